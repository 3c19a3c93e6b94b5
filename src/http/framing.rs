//! Where an HTTP/1.1 message's body ends: the rules both of our codecs (the server reading
//! clients' requests, the client reading upstreams' responses) apply to `Content-Length`,
//! `Transfer-Encoding` and chunk sizes. No I/O.
//!
//! Strict on purpose, as nginx is: a proxy that reads a length differently from the peer behind
//! or in front of it is the root of request smuggling. A length is ASCII digits and nothing
//! else — no sign (`u64::from_str` takes `+5`), no Unicode spaces (`str::trim` removes NBSP and
//! U+3000), no junk; only the optional whitespace RFC 9110 allows around a field value (space
//! and tab). A chunk size is hex digits, then at most whitespace and an extension.

/// A `Content-Length` value: 1–19 ASCII digits, optionally surrounded by spaces or tabs.
pub fn content_length(value: &[u8]) -> Option<u64> {
    digits(trim_ows(value))
}

/// A `Content-Length` field of a response, which RFC 9110 §8.6 lets be a list of one length
/// repeated (`42, 42`); different lengths are an error (`None`).
pub fn content_length_list(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|b| *b == b',') {
        let n = content_length(part)?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

fn digits(v: &[u8]) -> Option<u64> {
    // 19 digits always fit in a u64; nobody sends a body of 10^19 bytes.
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Removes leading and trailing optional whitespace (RFC 9110 §5.6.3: space and tab only).
pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What a request's `Transfer-Encoding` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Exactly `chunked` (any case): the only coding a request may use here.
    Chunked,
    /// Anything else (`gzip, chunked`, `chunked, identity`, `xchunked`, `chunked\v`, an empty
    /// value…): nginx answers 501 and so do we, never guessing where such a body ends.
    Other,
}

pub fn request_coding(value: &[u8]) -> Coding {
    if trim_ows(value).eq_ignore_ascii_case(b"chunked") { Coding::Chunked } else { Coding::Other }
}

/// The chunk-size line at the start of `buf`: `Ok(Some((line length with its CRLF, size)))`,
/// `Ok(None)` if the line is not complete yet, `Err` if it is malformed. httparse does the
/// parsing; this adds what it lets through: an empty or space-led size (it reads `\r\n` and
/// ` \r\n` as 0), and an endless extension (a line is at most `MAX_LINE` bytes).
pub fn chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, BadChunk> {
    const MAX_LINE: usize = 4096;
    match buf.first() {
        None => return Ok(None),
        Some(b) if !b.is_ascii_hexdigit() => return Err(BadChunk),
        Some(_) => {}
    }
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((len, size))) if len <= MAX_LINE => Ok(Some((len, size))),
        Ok(httparse::Status::Partial) if buf.len() <= MAX_LINE => Ok(None),
        _ => Err(BadChunk),
    }
}

/// A chunk-size line that is not hex digits, whitespace and an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_ascii_digits_only() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"5", Some(5)),
            (b" 5\t", Some(5)),
            (b"0005", Some(5)),
            (b"18446744073709551615", None), // 20 digits
            (b"9999999999999999999", Some(9_999_999_999_999_999_999)),
            (b"+5", None),
            (b"-5", None),
            (b"5 5", None),
            (b"5,5", None),
            (b"0x5", None),
            (b"", None),
            (b" ", None),
            ("\u{a0}5".as_bytes(), None),   // NBSP
            ("5\u{3000}".as_bytes(), None), // ideographic space
            ("\u{85}5".as_bytes(), None),   // NEL
            (b"\x0b5", None),               // vertical tab
            (b"5\r", None),
            ("５".as_bytes(), None), // fullwidth digit
        ];
        for (value, want) in table {
            assert_eq!(content_length(value), *want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn a_response_may_repeat_one_length() {
        assert_eq!(content_length_list(b"42, 42"), Some(42));
        assert_eq!(content_length_list(b"42,42 ,42"), Some(42));
        assert_eq!(content_length_list(b"42, 43"), None);
        assert_eq!(content_length_list(b"42,"), None);
        assert_eq!(content_length_list(b"+42"), None);
    }

    #[test]
    fn only_plain_chunked_is_a_request_coding() {
        assert_eq!(request_coding(b"chunked"), Coding::Chunked);
        assert_eq!(request_coding(b" Chunked "), Coding::Chunked);
        for v in
            [&b"gzip, chunked"[..], b"chunked, identity", b"xchunked", b"chunked\x0b", b"", b"identity", b"chunked;"]
        {
            assert_eq!(request_coding(v), Coding::Other, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn chunk_sizes_are_hex_digits_then_an_extension() {
        assert_eq!(chunk_size(b"a\r\n"), Ok(Some((3, 10))));
        assert_eq!(chunk_size(b"1F;name=value\r\n"), Ok(Some((15, 31))));
        assert_eq!(chunk_size(b"0\r\n"), Ok(Some((3, 0))));
        assert_eq!(chunk_size(b"a"), Ok(None));
        assert_eq!(chunk_size(b""), Ok(None));
        for bad in [&b"\r\n"[..], b" a\r\n", b"+a\r\n", b"-1\r\n", b"g\r\n", b"a\n", b"1 1\r\n", b"0x1\r\n"] {
            assert_eq!(chunk_size(bad), Err(BadChunk), "{:?}", String::from_utf8_lossy(bad));
        }
        // More hex digits than a u64 holds.
        assert_eq!(chunk_size(b"10000000000000000\r\n"), Err(BadChunk));
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5000));
        assert_eq!(chunk_size(&long), Err(BadChunk));
    }
}
