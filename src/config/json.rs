//! A JSON reader that keeps where each value came from (line and column), so a configuration
//! problem can be reported at its line. Accepts what editors write into MCP client configs
//! besides strict JSON: `//` and `/* */` comments and trailing commas (JSONC, as VS Code's).
//! Values are small documents: the reader is recursive with a depth limit. Its time is linear
//! in the text: strings are copied run by run, and an object's keys are checked for repeats with
//! a table once it outgrows a short scan (a generated file may have 100,000 servers).

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Node>),
    /// Keys in file order, each with the position of the key.
    Object(Vec<(String, Pos, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

const MAX_DEPTH: usize = 64;

/// Objects up to this many keys are checked for a repeated key by scanning them; larger ones
/// by a table of their keys.
const SCAN_KEYS: usize = 16;

pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser { s: text.as_bytes(), i: 0, line: 1, col: 1 };
    // A UTF-8 byte order mark, as some editors write.
    if text.starts_with('\u{feff}') {
        p.i = 3;
    }
    p.skip()?;
    let node = p.value(0)?;
    p.skip()?;
    if p.i < p.s.len() {
        return Err(p.error("unexpected text after the document"));
    }
    Ok(node)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
}

impl<'a> Parser<'a> {
    fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError { pos: self.pos(), message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xc0 != 0x80 {
            // Columns count characters, not UTF-8 continuation bytes.
            self.col += 1;
        }
        Some(c)
    }

    /// Whitespace and comments.
    fn skip(&mut self) -> Result<(), SyntaxError> {
        loop {
            match (self.peek(), self.s.get(self.i + 1).copied()) {
                (Some(b' ' | b'\t' | b'\n' | b'\r'), _) => {
                    self.bump();
                }
                (Some(b'/'), Some(b'/')) => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(SyntaxError { pos: start, message: "unterminated /* comment".into() }),
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        let pos = self.pos();
        let value = match self.peek() {
            None => return Err(self.error("unexpected end of the file")),
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?.into_owned()),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number()?,
            Some(c) => return Err(self.error(format!("unexpected character {:?}", c as char))),
        };
        Ok(Node { value, pos })
    }

    fn word(&mut self, word: &str, v: Value) -> Result<Value, SyntaxError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            for _ in 0..word.len() {
                self.bump();
            }
            Ok(v)
        } else {
            Err(self.error(format!("expected {word}")))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.i;
        let pos = self.pos();
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.bump();
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::Number)
            .ok_or_else(|| SyntaxError { pos, message: format!("{text:?} is not a number") })
    }

    /// A string's text: borrowed from the document when it holds no escape (most do).
    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        let start = self.pos();
        self.bump(); // the opening quote
        let s: &'a [u8] = self.s;
        // Only once an escape is met is the text copied.
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            // The run up to the next quote, backslash or line break, in one pass (a plain loop:
            // it is the hot one, and debug builds do not inline iterator adapters).
            let from = self.i;
            let mut end = from;
            let mut chars = 0;
            while end < s.len() && !matches!(s[end], b'"' | b'\\' | b'\n') {
                // Columns count characters, not UTF-8 continuation bytes.
                chars += u32::from(s[end] & 0xc0 != 0x80);
                end += 1;
            }
            self.i = end;
            self.col += chars;
            let run = &s[from..end];
            match self.bump() {
                None => return Err(SyntaxError { pos: start, message: "unterminated string".into() }),
                Some(b'"') => {
                    let text = match unescaped {
                        None => std::str::from_utf8(run).map(Cow::Borrowed).ok(),
                        Some(mut out) => {
                            out.extend_from_slice(run);
                            String::from_utf8(out).map(Cow::Owned).ok()
                        }
                    };
                    return text
                        .ok_or_else(|| SyntaxError { pos: start, message: "a string that is not UTF-8".into() });
                }
                Some(b'\n') => return Err(SyntaxError { pos: start, message: "a line break inside a string".into() }),
                Some(_) => {
                    let out = unescaped.get_or_insert_with(Vec::new);
                    out.extend_from_slice(run);
                    match self.bump() {
                        Some(b'"') => out.push(b'"'),
                        Some(b'\\') => out.push(b'\\'),
                        Some(b'/') => out.push(b'/'),
                        Some(b'b') => out.push(8),
                        Some(b'f') => out.push(12),
                        Some(b'n') => out.push(b'\n'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'u') => {
                            let c = self.unicode()?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.error("invalid escape in a string")),
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0;
        for _ in 0..4 {
            let d =
                self.bump().and_then(|c| (c as char).to_digit(16)).ok_or_else(|| self.error("invalid \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn unicode(&mut self) -> Result<char, SyntaxError> {
        let hi = self.hex4()?;
        if (0xd800..0xdc00).contains(&hi) {
            if self.bump() != Some(b'\\') || self.bump() != Some(b'u') {
                return Err(self.error("a lone surrogate in a \\u escape"));
            }
            let lo = self.hex4()?;
            let c = 0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff);
            return char::from_u32(c).ok_or_else(|| self.error("invalid \\u escape"));
        }
        char::from_u32(hi).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip()?;
            if self.peek() == Some(b']') {
                self.bump();
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth + 1)?);
            self.skip()?;
            match self.peek() {
                Some(b',') => {
                    self.bump();
                }
                Some(b']') => {}
                _ => return Err(self.error("expected , or ] in an array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.bump();
        let mut members: Vec<(String, Pos, Node)> = Vec::new();
        loop {
            self.skip()?;
            match self.peek() {
                Some(b'}') => {
                    self.bump();
                    if let Some((key, pos)) = repeated_key(&members) {
                        return Err(SyntaxError { pos, message: format!("the key {key:?} appears twice") });
                    }
                    return Ok(Value::Object(members));
                }
                Some(b'"') => {}
                _ => return Err(self.error("expected a \"key\" or } in an object")),
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip()?;
            if self.bump() != Some(b':') {
                return Err(self.error(format!("expected : after the key {key:?}")));
            }
            self.skip()?;
            let value = self.value(depth + 1)?;
            members.push((key.into_owned(), key_pos, value));
            self.skip()?;
            match self.peek() {
                Some(b',') => {
                    self.bump();
                }
                Some(b'}') => {}
                _ => return Err(self.error("expected , or } in an object")),
            }
        }
    }
}

/// The first key of an object (in file order) that repeats an earlier one. A scan for small
/// objects; for larger ones (a generated file may put 100,000 servers in one object) a table of
/// member indices by a hash of the key, in plain loops: linear, and cheap even in a debug build,
/// where std's `HashSet` and `sort` each took a quarter of a 10 MB file's parse. The hash has no
/// secret seed: the keys are the operator's own file, not a stranger's.
fn repeated_key(members: &[(String, Pos, Node)]) -> Option<(&str, Pos)> {
    if members.len() <= SCAN_KEYS {
        return members
            .iter()
            .enumerate()
            .find(|(i, (k, _, _))| members[..*i].iter().any(|(earlier, _, _)| earlier == k))
            .map(|(_, (k, pos, _))| (k.as_str(), *pos));
    }
    const EMPTY: usize = usize::MAX;
    let mask = (members.len() * 2).next_power_of_two() - 1;
    let mut slots = vec![EMPTY; mask + 1];
    for (i, (key, pos, _)) in members.iter().enumerate() {
        let mut slot = fnv1a(key.as_bytes()) as usize & mask;
        loop {
            match slots[slot] {
                EMPTY => {
                    slots[slot] = i;
                    break;
                }
                j if members[j].0 == *key => return Some((key.as_str(), *pos)),
                _ => slot = (slot + 1) & mask,
            }
        }
    }
    None
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ u64::from(bytes[i])).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_comments_and_errors() {
        let doc = "{\n  // a comment\n  \"a\": [1, 2,],\n  /* block */ \"b\": {\"c\": \"\\u00e9\\ud83d\\ude00\"},\n}";
        let n = parse(doc).unwrap();
        let Value::Object(m) = &n.value else { panic!() };
        assert_eq!(m[0].0, "a");
        assert_eq!(m[0].1, Pos { line: 3, col: 3 });
        assert_eq!(m[0].2.pos, Pos { line: 3, col: 8 });
        let Value::Object(b) = &m[1].2.value else { panic!() };
        assert_eq!(b[0].2.value, Value::String("é😀".into()));
        for (bad, at) in [
            ("{\"a\": 1 \"b\": 2}", "1:9"),
            ("{\"a\": tru}", "1:7"),
            ("[1, 2", "1:6"),
            ("{\"a\": 1, \"a\": 2}", "1:10"),
            ("\"x\ny\"", "1:1"),
            ("/* open", "1:1"),
            ("{} x", "1:4"),
            ("", "1:1"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.pos.to_string(), at, "{bad:?}: {e}");
        }
        // Past the short scan, a table finds a repeat just as well.
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"k3\": 1}}", many.join(", "));
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("\"k3\" appears twice"), "{e}");
        assert!(parse(&format!("{{{}}}", many.join(", "))).is_ok());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).is_err(), "depth is bounded");
    }
}
