//! Text that ends up where space is limited (conditions, Events, error messages, logs): cut
//! at a character boundary with a note of what was left out, and lists shortened to their
//! first items.
use std::borrow::Cow;
use std::fmt::Display;

/// `text` if it fits in `max_bytes`, else its start followed by `… (N more characters)`,
/// the whole at most `max_bytes` long.
pub fn truncate(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    // The note is longest when the whole text is counted: reserve that much.
    let longest_note = note(text.chars().count()).len();
    let Some(room) = max_bytes.checked_sub(longest_note) else {
        return Cow::Owned(text[..floor_char_boundary(text, max_bytes)].to_owned());
    };
    let cut = floor_char_boundary(text, room);
    let mut out = String::with_capacity(max_bytes);
    out.push_str(&text[..cut]);
    out.push_str(&note(text[cut..].chars().count()));
    Cow::Owned(out)
}

/// `text` if it fits in `max_bytes`, else its start and its end around
/// `… (N more characters) …`: for messages whose end matters too (a parser's "expected i64
/// at line 1 column 80" after a quoted value).
pub fn elide_middle(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let longest_note = format!("{} …", note(text.chars().count())).len();
    let Some(room) = max_bytes.checked_sub(longest_note) else {
        return truncate(text, max_bytes);
    };
    let head = floor_char_boundary(text, room * 2 / 3);
    let tail = ceil_char_boundary(text, text.len() - (room - head));
    let left_out = text[head..tail].chars().count();
    Cow::Owned(format!(
        "{}{} …{}",
        &text[..head],
        note(left_out),
        &text[tail..]
    ))
}

/// [`truncate`] for an owned text: the same `String` back when it fits.
pub fn cut(text: String, max_bytes: usize) -> String {
    match truncate(&text, max_bytes) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    }
}

fn note(left_out: usize) -> String {
    format!("… ({left_out} more characters)")
}

/// The largest index at most `index` that falls between two characters of `text`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    (0..=index.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// The smallest index at least `index` that falls between two characters of `text`.
fn ceil_char_boundary(text: &str, index: usize) -> usize {
    (index.min(text.len())..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len())
}

/// How many items a message names before it counts the rest.
pub const LISTED: usize = 10;

/// The first `shown` items joined with `, `, then `and N more` for the rest (all of them
/// when only one more would be left).
pub fn list<T: Display>(items: &[T], shown: usize) -> String {
    let named = if items.len() > shown + 1 {
        shown
    } else {
        items.len()
    };
    let out = items[..named]
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if named < items.len() {
        format!("{out} and {} more", items.len() - named)
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert_eq!(truncate("Invalid signature", 1024), "Invalid signature");
        assert_eq!(truncate("", 0), "");
        let exact = "x".repeat(1024);
        assert_eq!(truncate(&exact, 1024), exact);
    }

    #[test]
    fn long_text_is_cut_with_a_count_of_what_is_left_out() {
        let text = "y".repeat(3 << 20);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.starts_with("yyyy"));
        let kept = cut.chars().take_while(|c| *c == 'y').count();
        assert!(
            cut.ends_with(&format!("… ({} more characters)", (3 << 20) - kept)),
            "{}",
            &cut[kept..]
        );
        assert!(kept > 900, "{kept}");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        // Two- and four-byte characters: never a cut inside one.
        for text in [
            "é".repeat(2000),
            "🦀".repeat(1000),
            format!("a{}", "é".repeat(999)),
        ] {
            for max in [40, 41, 42, 43, 1023, 1024] {
                let cut = truncate(&text, max);
                assert!(cut.len() <= max, "{max}: {}", cut.len());
                let kept: String = cut.chars().take_while(|c| *c != '…').collect();
                let rest = text.chars().count() - kept.chars().count();
                assert!(
                    cut.ends_with(&format!("… ({rest} more characters)")),
                    "{cut}"
                );
            }
        }
        // Too small for the note: as much of the text as fits.
        assert!(truncate(&"z".repeat(100), 5).len() <= 5);
    }

    #[test]
    fn the_middle_goes_when_the_end_matters() {
        let message = format!(
            "invalid type: string \"{}\", expected i64 at line 1 column 100070",
            "x".repeat(100_000)
        );
        let cut = elide_middle(&message, 240);
        assert!(cut.len() <= 240, "{}", cut.len());
        assert!(cut.starts_with("invalid type: string \"xxx"), "{cut}");
        assert!(
            cut.ends_with("\", expected i64 at line 1 column 100070"),
            "{cut}"
        );
        assert!(cut.contains(" more characters) …"), "{cut}");
        assert_eq!(elide_middle("short", 240), "short");
        let wide = "é🦀".repeat(100);
        for max in [30, 31, 32, 33, 60] {
            let cut = elide_middle(&wide, max);
            assert!(cut.len() <= max, "{max}: {cut}");
        }
    }

    #[test]
    fn lists_show_their_first_items_then_how_many_more() {
        let items: Vec<String> = (0..300).map(|i| format!("m{i}@d.ovh")).collect();
        assert_eq!(list(&items, 3), "m0@d.ovh, m1@d.ovh, m2@d.ovh and 297 more");
        assert_eq!(list(&items[..3], 3), "m0@d.ovh, m1@d.ovh, m2@d.ovh");
        assert_eq!(list(&items[..1], 3), "m0@d.ovh");
        assert_eq!(list::<String>(&[], 3), "");
        // One left over: named rather than counted.
        assert_eq!(
            list(&items[..4], 3),
            "m0@d.ovh, m1@d.ovh, m2@d.ovh, m3@d.ovh"
        );
    }
}
