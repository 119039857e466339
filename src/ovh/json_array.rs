//! A JSON array cut into its elements as its bytes arrive, so that a long list (a service's
//! thousands of accounts, 1.3 KB of JSON each) is decoded one element at a time into the few
//! fields the operator keeps, instead of being held whole as text first.
//!
//! The splitter only finds where each element begins and ends (strings, escapes and nesting
//! included); `serde_json` decodes each element and reports anything malformed in it.

/// Why an answer could not be cut into elements.
#[derive(Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The answer is not one JSON array (an object, a scalar, text after the array).
    NotAnArray,
    /// The answer ended inside the array.
    Truncated,
    /// One element is longer than the limit given to [`Splitter::new`].
    ElementTooLarge,
}

/// Where the splitter stands between two bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Before the opening `[`.
    Start,
    /// Inside the array, after `[`: an element or `]` comes next.
    BetweenElements,
    /// After a `,`: an element comes next.
    AfterComma,
    /// Inside an element.
    InElement,
    /// After an element, before `,` or `]`.
    AfterElement,
    /// After the closing `]`.
    End,
}

/// Cuts one JSON array into elements, fed in chunks of any size.
pub struct Splitter {
    place: Place,
    /// The current element's bytes so far.
    element: Vec<u8>,
    /// Open `{` and `[` inside the current element.
    depth: usize,
    in_string: bool,
    escaped: bool,
    limit: usize,
}

impl Splitter {
    /// A splitter refusing elements longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            place: Place::Start,
            element: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            limit,
        }
    }

    /// Feeds the next bytes of the answer; `each` gets every element completed by them, as
    /// its JSON text. An error from `each` stops the feed and is returned as is.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Fed<E>> {
        for &byte in chunk {
            match self.place {
                Place::Start => match byte {
                    b'[' => self.place = Place::BetweenElements,
                    b if b.is_ascii_whitespace() => {}
                    _ => return Err(Fed::Split(SplitError::NotAnArray)),
                },
                Place::BetweenElements | Place::AfterComma | Place::AfterElement | Place::End
                    if byte.is_ascii_whitespace() => {}
                Place::BetweenElements if byte == b']' => self.place = Place::End,
                Place::BetweenElements | Place::AfterComma => {
                    if byte == b']' || byte == b',' {
                        // `[1,]` or `[,`: `serde_json` refuses them too.
                        return Err(Fed::Split(SplitError::NotAnArray));
                    }
                    self.place = Place::InElement;
                    self.push(byte)?;
                    self.track(byte);
                }
                Place::InElement => {
                    let closes_scalar = self.depth == 0
                        && !self.in_string
                        && (byte == b',' || byte == b']' || byte.is_ascii_whitespace());
                    if closes_scalar {
                        self.complete(&mut each)?;
                        self.after(byte)?;
                        continue;
                    }
                    self.push(byte)?;
                    self.track(byte);
                    if self.depth == 0 && !self.in_string && matches!(byte, b'}' | b']' | b'"') {
                        self.complete(&mut each)?;
                        self.place = Place::AfterElement;
                    }
                }
                Place::AfterElement => self.after(byte)?,
                Place::End => return Err(Fed::Split(SplitError::NotAnArray)),
            }
        }
        Ok(())
    }

    /// Says the answer is over: an error unless it held one whole array.
    pub fn finish(&self) -> Result<(), SplitError> {
        match self.place {
            Place::End => Ok(()),
            Place::Start => Err(SplitError::NotAnArray),
            _ => Err(SplitError::Truncated),
        }
    }

    fn push<E>(&mut self, byte: u8) -> Result<(), Fed<E>> {
        if self.element.len() >= self.limit {
            return Err(Fed::Split(SplitError::ElementTooLarge));
        }
        self.element.push(byte);
        Ok(())
    }

    /// Follows strings and nesting through one byte of an element.
    fn track(&mut self, byte: u8) {
        if self.in_string {
            match byte {
                _ if self.escaped => self.escaped = false,
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                _ => {}
            }
            return;
        }
        match byte {
            b'"' => {
                // A string opened at depth 0 is the whole element; it completes when it
                // closes, like a `}` at depth 0.
                self.in_string = true;
            }
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
    }

    /// The byte after a complete element: `,` opens the next one, `]` ends the array.
    fn after<E>(&mut self, byte: u8) -> Result<(), Fed<E>> {
        match byte {
            b',' => self.place = Place::AfterComma,
            b']' => self.place = Place::End,
            b if b.is_ascii_whitespace() => self.place = Place::AfterElement,
            _ => return Err(Fed::Split(SplitError::NotAnArray)),
        }
        Ok(())
    }

    fn complete<E>(&mut self, each: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), Fed<E>> {
        let result = each(&self.element).map_err(Fed::Element);
        self.element.clear();
        result
    }
}

/// Why [`Splitter::feed`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed<E> {
    Split(SplitError),
    /// The element callback's own error.
    Element(E),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The elements of `text` fed in chunks of `chunk` bytes, as JSON text.
    fn split(text: &str, chunk: usize, limit: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = Splitter::new(limit);
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(chunk.max(1)) {
            splitter
                .feed(piece, |e| {
                    out.push(String::from_utf8(e.to_vec()).unwrap());
                    Ok::<(), ()>(())
                })
                .map_err(|e| match e {
                    Fed::Split(e) => e,
                    Fed::Element(()) => unreachable!(),
                })?;
        }
        splitter.finish()?;
        Ok(out)
    }

    #[test]
    fn elements_of_every_kind_come_out_whole() {
        let text = r#" [ {"a": "x,]}", "b": [1, {"c": "\"}"}]}, 42, -1.5e3, "a \"q\" ]", true, null, [[]], {} ] "#;
        let expected = vec![
            r#"{"a": "x,]}", "b": [1, {"c": "\"}"}]}"#,
            "42",
            "-1.5e3",
            r#""a \"q\" ]""#,
            "true",
            "null",
            "[[]]",
            "{}",
        ];
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                split(text, chunk, 1 << 10).unwrap(),
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn an_empty_array_has_no_element() {
        assert_eq!(split("[]", 1, 10).unwrap(), Vec::<String>::new());
        assert_eq!(split(" [ \n ] ", 1, 10).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn what_is_not_one_array_is_refused() {
        for text in [r#"{"a": 1}"#, "null", "", "[1] [2]", "[1 2]", "[1,]"] {
            assert!(
                split(text, 3, 100).is_err(),
                "{text:?} was taken as an array"
            );
        }
        assert_eq!(split("[1, {\"a\": ", 4, 100), Err(SplitError::Truncated));
    }

    #[test]
    fn an_element_over_the_limit_is_refused_and_one_at_it_is_not() {
        assert_eq!(split(r#"["abcd"]"#, 2, 5), Err(SplitError::ElementTooLarge));
        assert_eq!(split(r#"["abc"]"#, 2, 5).unwrap(), vec![r#""abc""#]);
    }

    #[test]
    fn the_callbacks_error_stops_the_feed() {
        let mut splitter = Splitter::new(100);
        let mut seen = 0;
        let result = splitter.feed(b"[1, 2, 3]", |_| {
            seen += 1;
            if seen == 2 { Err("second") } else { Ok(()) }
        });
        assert_eq!(result, Err(Fed::Element("second")));
        assert_eq!(seen, 2);
    }

    proptest! {
        /// Any array `serde_json` writes comes out as its elements, whatever the chunks.
        #[test]
        fn any_array_splits_into_what_serde_reads(
            values in proptest::collection::vec(json_value(), 0..8),
            chunk in 1usize..40,
            pretty in any::<bool>(),
        ) {
            let array = serde_json::Value::Array(values.clone());
            let text = if pretty {
                serde_json::to_string_pretty(&array).unwrap()
            } else {
                serde_json::to_string(&array).unwrap()
            };
            let parts = split(&text, chunk, 1 << 20).unwrap();
            let decoded: Vec<serde_json::Value> =
                parts.iter().map(|p| serde_json::from_str(p).unwrap()).collect();
            prop_assert_eq!(decoded, values);
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\,\\]\\[{} ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
