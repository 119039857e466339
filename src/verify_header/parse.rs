//! Reading a header block: fields, then `Received:` hops.
use super::hosts::{is_ip, normalize};
use std::fmt;

/// Why a header block cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the input is empty")]
    Empty,
    #[error("the input is binary data, not a message header")]
    Binary,
    #[error("no header lines found (a header line looks like `Name: value`)")]
    NoHeaders,
    #[error("no Received: header found: paste the full header block of the received message")]
    NoReceived,
}

/// One header field, unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name as written.
    pub name: String,
    /// The value, unfolded onto one line, trimmed.
    pub value: String,
}

impl Field {
    /// Whether the field has this name (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// A header block: its fields in their order (topmost first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    pub fields: Vec<Field>,
    /// Lines that were neither a field nor a continuation, ignored.
    pub garbage_lines: usize,
}

impl HeaderBlock {
    /// The fields with this name, with their position in the block.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a Field)> + 'a {
        self.fields
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.is(name))
    }

    /// The first field with this name.
    pub fn first(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.is(name))
    }
}

/// Splits a header block into fields: folded lines (starting with a space or tab) continue the
/// previous field, the first empty line after a field ends the block (the body follows), CRLF
/// and LF both end a line, and lines that are neither are counted and skipped.
pub fn parse_header_block(input: &[u8]) -> Result<HeaderBlock, InputError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::Empty);
    }
    if looks_binary(input) {
        return Err(InputError::Binary);
    }
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut block = HeaderBlock::default();
    let mut current: Option<Field> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if current.is_some() || !block.fields.is_empty() {
                break;
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some(field) => {
                    if !field.value.is_empty() {
                        field.value.push(' ');
                    }
                    field.value.push_str(line.trim());
                }
                None => block.garbage_lines += 1,
            }
            continue;
        }
        match split_field(line) {
            Some((name, value)) => {
                block.fields.extend(current.take());
                current = Some(Field {
                    name: name.to_owned(),
                    value: value.trim().to_owned(),
                });
            }
            None => block.garbage_lines += 1,
        }
    }
    block.fields.extend(current);
    if block.fields.is_empty() {
        return Err(InputError::NoHeaders);
    }
    Ok(block)
}

/// Binary data: NUL bytes, or many control characters other than tab, CR and LF.
fn looks_binary(input: &[u8]) -> bool {
    let control = input
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0c))
        .count();
    input.contains(&0) || control * 20 > input.len()
}

/// `Name: value`, the name being printable ASCII without spaces or colons.
fn split_field(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let valid = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    valid.then_some((name, value))
}

/// The sending side of a hop, as the receiving server recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FromPart {
    /// The name the sending server gave for itself (HELO/EHLO).
    pub helo: Option<String>,
    /// The name its address resolves to, as looked up by the receiving server.
    pub rdns: Option<String>,
    /// Its address.
    pub ip: Option<String>,
}

impl FromPart {
    /// The names to judge the sender by, the most trustworthy first: the resolved name, then
    /// the HELO name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rdns.iter().chain(self.helo.iter()).map(String::as_str)
    }

    /// The best name, or the address.
    pub fn best(&self) -> Option<&str> {
        self.names().next().or(self.ip.as_deref())
    }
}

impl fmt::Display for FromPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match (&self.rdns, &self.helo) {
            (Some(rdns), Some(helo)) if rdns != helo => {
                parts.push(format!("{rdns} (HELO {helo})"));
            }
            (Some(name), _) | (None, Some(name)) => parts.push(name.clone()),
            (None, None) => {}
        }
        if let Some(ip) = &self.ip {
            parts.push(format!("[{ip}]"));
        }
        if parts.is_empty() {
            f.write_str("?")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// One `Received:` header: a server (`by`) took the message from another (`from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Position of the `Received:` field in the header block (0 = topmost field).
    pub field_index: usize,
    pub from: Option<FromPart>,
    /// The receiving server, lower case.
    pub by: Option<String>,
    /// The recipient the server noted (`for <...>`), if any.
    pub for_address: Option<String>,
    /// The time stamp, as written.
    pub time: Option<String>,
}

/// The `Received:` hops, from the origin (the bottom one) to the recipient (the topmost one).
pub fn hops(block: &HeaderBlock) -> Vec<Hop> {
    let mut hops: Vec<Hop> = block
        .all("Received")
        .map(|(index, field)| parse_received(index, &field.value))
        .collect();
    hops.reverse();
    hops
}

/// A token of a `Received:` value: a word, or a parenthesised comment.
#[derive(Debug)]
enum Token {
    Word(String),
    Comment(String),
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            let mut depth = 1;
            let mut comment = String::new();
            for c in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                comment.push(c);
            }
            tokens.push(Token::Comment(comment));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    tokens
}

/// Reads `from X (Y [ip]) by Z ... for <a@b>; date` in its common dialects (Postfix, Exim,
/// qmail, Sendmail, Exchange, Gmail). Missing parts stay `None`.
pub fn parse_received(field_index: usize, value: &str) -> Hop {
    let (clauses, time) = match value.rsplit_once(';') {
        Some((clauses, time)) if !time.trim().is_empty() => (clauses, Some(time.trim().to_owned())),
        Some((clauses, _)) => (clauses, None),
        None => (value, None),
    };
    let tokens = tokenize(clauses);
    let mut hop = Hop {
        field_index,
        from: None,
        by: None,
        for_address: None,
        time,
    };
    let mut i = 0;
    while i < tokens.len() {
        let Token::Word(word) = &tokens[i] else {
            i += 1;
            continue;
        };
        let next_word = match tokens.get(i + 1) {
            Some(Token::Word(w)) => Some(w.as_str()),
            _ => None,
        };
        match word.to_ascii_lowercase().as_str() {
            "from" if hop.from.is_none() && next_word.is_some() => {
                let mut comments = Vec::new();
                let mut j = i + 2;
                while let Some(Token::Comment(c)) = tokens.get(j) {
                    comments.push(c.as_str());
                    j += 1;
                }
                hop.from = Some(parse_from(next_word.unwrap_or_default(), &comments));
                i = j;
                continue;
            }
            "by" if hop.by.is_none() && next_word.is_some() => {
                hop.by = next_word.and_then(normalize);
                i += 2;
                continue;
            }
            "for" if hop.for_address.is_none() && next_word.is_some() => {
                hop.for_address = next_word.map(|w| {
                    w.trim_matches(|c| c == '<' || c == '>' || c == ';')
                        .to_owned()
                });
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    hop
}

/// An IPv4 or IPv6 address in form (a header may carry a mistyped one, as the guide's does).
fn looks_like_address(word: &str) -> bool {
    let word = word.trim_matches(|c| c == '[' || c == ']' || c == ',');
    let word = word.strip_prefix("IPv6:").unwrap_or(word);
    is_ip(word)
        || (word.contains(['.', ':'])
            && word
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
            && word.chars().any(|c| c.is_ascii_digit()))
}

/// The `from` clause: the first word and the comments after it.
fn parse_from(first: &str, comments: &[&str]) -> FromPart {
    let mut part = FromPart::default();
    let mut named_in_comment = None;
    for comment in comments {
        let words: Vec<&str> = comment.split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            let word = words[k];
            let lower = word.to_ascii_lowercase();
            if (lower == "helo" || lower == "ehlo") && k + 1 < words.len() {
                part.helo = normalize(words[k + 1]);
                k += 2;
                continue;
            }
            if let Some(helo) = lower
                .strip_prefix("helo=")
                .or_else(|| lower.strip_prefix("ehlo="))
            {
                part.helo = normalize(helo);
            } else if word.starts_with('[') || looks_like_address(word) {
                let ip = word.trim_matches(|c| c == '[' || c == ']' || c == ',');
                if looks_like_address(ip) && part.ip.is_none() {
                    part.ip = Some(ip.to_owned());
                }
            } else if named_in_comment.is_none()
                && lower != "unknown"
                && word.contains('.')
                && !word.contains('@')
                && !word.contains('=')
            {
                named_in_comment = normalize(word);
            }
            k += 1;
        }
    }
    let first = normalize(first);
    match first {
        Some(first) if looks_like_address(&first) => {
            part.ip
                .get_or_insert_with(|| first.trim_matches(['[', ']']).to_owned());
            part.rdns = named_in_comment;
        }
        Some(first) if first == "unknown" => {
            part.rdns = None;
            if part.helo.is_none() {
                part.helo = named_in_comment;
            }
        }
        Some(first) => {
            if part.helo.is_some() {
                // qmail and Exim: `from rDNS (HELO name)`.
                part.rdns = Some(first);
            } else {
                // Postfix and Sendmail: `from HELO (rDNS [ip])`.
                part.helo = Some(first);
                part.rdns = named_in_comment;
            }
        }
        None => part.rdns = named_in_comment,
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_crlf_and_body() {
        let block = parse_header_block(
            b"Received: from a.example.com\r\n\tby b.example.com;\r\n Tue, 1 Jan 2030\r\nnot a field\r\nSubject: hi\r\n\r\nReceived: body line\r\n",
        )
        .unwrap();
        assert_eq!(block.fields.len(), 2);
        assert_eq!(
            block.fields[0].value,
            "from a.example.com by b.example.com; Tue, 1 Jan 2030"
        );
        assert_eq!(block.garbage_lines, 1);
    }

    #[test]
    fn unreadable_inputs() {
        assert_eq!(parse_header_block(b""), Err(InputError::Empty));
        assert_eq!(parse_header_block(b" \n\r\n"), Err(InputError::Empty));
        assert_eq!(
            parse_header_block(b"\x00\x01PK\x03\x04"),
            Err(InputError::Binary)
        );
        assert_eq!(
            parse_header_block(b"just some text\nand more\n"),
            Err(InputError::NoHeaders)
        );
    }

    #[test]
    fn received_dialects() {
        let hop = parse_received(
            0,
            "from sender-id.example.com (sender-id.example.com [11.22.333.44]) by in31.mail.ovh.net (Postfix) with ESMTPS id 4PQ for <john.smith@guides.ovh>; Tue, 28 Feb 2023 07:51:01 +0000 (UTC)",
        );
        let from = hop.from.unwrap();
        assert_eq!(from.helo.as_deref(), Some("sender-id.example.com"));
        assert_eq!(from.rdns.as_deref(), Some("sender-id.example.com"));
        assert_eq!(from.ip.as_deref(), Some("11.22.333.44"));
        assert_eq!(hop.by.as_deref(), Some("in31.mail.ovh.net"));
        assert_eq!(hop.for_address.as_deref(), Some("john.smith@guides.ovh"));
        assert_eq!(
            hop.time.as_deref(),
            Some("Tue, 28 Feb 2023 07:51:01 +0000 (UTC)")
        );

        let hop = parse_received(
            0,
            "from unknown (HELO output28.mail.ovh.net) (192.168.11.93) by 192.168.1.2 with AES256-GCM-SHA384 encrypted SMTP; 28 Feb 2023 09:51:02 +0200",
        );
        let from = hop.from.unwrap();
        assert_eq!(from.helo.as_deref(), Some("output28.mail.ovh.net"));
        assert_eq!(from.rdns, None);
        assert_eq!(from.ip.as_deref(), Some("192.168.11.93"));
        assert_eq!(hop.by.as_deref(), Some("192.168.1.2"));

        let hop = parse_received(
            0,
            "by smtp-relay.smtp.example.com with ESMTP id 12185513; Tue Feb 28 2023 07:51:00 GMT+0000",
        );
        assert_eq!(hop.from, None);
        assert_eq!(hop.by.as_deref(), Some("smtp-relay.smtp.example.com"));

        let hop = parse_received(
            0,
            "from mail.example.org ([203.0.113.9] helo=relay.example.org) by mx.example.net with esmtps (Exim 4.96); Mon, 2 Jan 2023",
        );
        let from = hop.from.unwrap();
        assert_eq!(from.rdns.as_deref(), Some("mail.example.org"));
        assert_eq!(from.helo.as_deref(), Some("relay.example.org"));

        let hop = parse_received(
            0,
            "from EX2.mail.ovh.net (172.16.2.2) by EX3.mail.ovh.net (172.16.2.3) with Microsoft SMTP Server (version=TLS1_2) id 15.1.2507.32; Mon, 2 Jan 2023",
        );
        assert_eq!(hop.from.unwrap().helo.as_deref(), Some("ex2.mail.ovh.net"));
        assert_eq!(hop.by.as_deref(), Some("ex3.mail.ovh.net"));

        let hop = parse_received(0, "garbage without clauses");
        assert_eq!((hop.from, hop.by), (None, None));
    }
}

/// Property tests: whatever is pasted or piped in, reading it and judging it ends, quickly,
/// with a report or an input error, never a panic.
#[cfg(test)]
mod properties {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::verdict::{Relay, analyse, render};
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write as _;
    use std::time::{Duration, Instant};

    /// Far more than reading and judging any of these inputs takes (tens of milliseconds in a
    /// debug build), even on a busy machine; far less than a blow-up would.
    const TIME_LIMIT: Duration = Duration::from_secs(5);

    fn read_and_judge(input: &[u8]) -> Result<(), TestCaseError> {
        let started = Instant::now();
        if let Ok(block) = parse_header_block(input) {
            let _ = hops(&block);
            let relay = Relay::new("smtp-relay.example.com").unwrap();
            if let Ok(report) = analyse(&block, &relay) {
                let _ = render(&report);
            }
        }
        prop_assert!(started.elapsed() < TIME_LIMIT, "{:?}", started.elapsed());
        Ok(())
    }

    /// Header-like lines: names and values built from the words a `Received:` field uses.
    fn header_line() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("from".to_owned()),
            Just("by".to_owned()),
            Just("for".to_owned()),
            Just("with".to_owned()),
            Just("(HELO".to_owned()),
            Just("helo=".to_owned()),
            Just("[127.0.0.1])".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just(";".to_owned()),
            Just("<a@b.example>".to_owned()),
            "[a-z0-9.-]{1,30}",
            ".{0,20}",
        ];
        let name = prop_oneof![
            Just("Received".to_owned()),
            Just("From".to_owned()),
            Just("To".to_owned()),
            Just("Delivered-To".to_owned()),
            Just("Authentication-Results".to_owned()),
            Just("DKIM-Signature".to_owned()),
            Just("Return-Path".to_owned()),
            "[!-9;-~]{1,80}",
        ];
        (
            name,
            prop::collection::vec(word, 0..16),
            prop_oneof![Just(""), Just(" "), Just("\t")],
        )
            .prop_map(|(name, words, fold)| format!("{fold}{name}: {}", words.join(" ")))
    }

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..4096)) {
            read_and_judge(&input)?;
        }

        #[test]
        fn arbitrary_text(input in ".{0,2000}") {
            read_and_judge(input.as_bytes())?;
        }

        #[test]
        fn header_like_blocks(
            lines in prop::collection::vec(header_line(), 0..40),
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            read_and_judge(lines.join(end).as_bytes())?;
        }
    }

    // Large inputs: fewer cases, each of them big.
    proptest! {
        #![proptest_config(config(48))]

        #[test]
        fn very_long_lines(
            word in "[a-z(\\[\\]. ;]{1,8}",
            repeat in 0usize..100_000,
            name in prop_oneof![Just("Received"), Just("From"), Just("X-Long")],
        ) {
            let input = format!("{name}: from {}\nTo: a@b.example\n", word.repeat(repeat));
            read_and_judge(input.as_bytes())?;
        }

        #[test]
        fn many_headers(count in 0usize..3000, hosts in 1usize..50) {
            let mut input = String::new();
            for i in 0..count {
                writeln!(
                    input,
                    "Received: from h{}.example.net (h{}.example.net [10.0.0.{}])\n\tby mx{}.example.org with ESMTP; Tue, 1 Jan 2030 00:00:00 +0000",
                    i % hosts, i % hosts, i % 250, (i + 1) % hosts
                )
                .unwrap();
            }
            input.push_str("From: a@sender.example\nTo: b@recipient.example\n");
            read_and_judge(input.as_bytes())?;
        }
    }
}
