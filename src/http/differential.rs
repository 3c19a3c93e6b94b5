//! Both of our HTTP/1 codecs against the parsers they must never be more lenient than, on
//! messages made to find where they part.
//!
//! The messages come from a grammar with the perturbations request smuggling is made of: the
//! framing and routing fields (`Content-Length`, `Transfer-Encoding`, `Host`, `Connection`,
//! `Expect`) in any case and repeated; lengths with signs, hex, lists, junk and padding that is
//! whitespace only to some (tab, NBSP, U+3000, NEL, vertical tab, NUL, CR); codings obfuscated;
//! obs-fold; bare LF for CRLF; origin, absolute and asterisk targets; HTTP/1.0, 1.1 and others;
//! chunk-size lines with signs, spaces, extensions (one holding a bare LF), no digits or too
//! many, sizes off by one; chunk data without its CRLF; trailers good and bad. Each message goes
//! whole to our code and to the reference, and our codecs are held to this:
//!
//! - `request_heads_we_accept_httparse_reads_alike`: a head `head::parse` accepts, httparse
//!   reads as well, with the same length, method, target, version and number of fields.
//! - `requests_we_read_hyper_reads_alike`: a request our connection loop (`h1::serve`, on a
//!   real socket) reads and answers, hyper's server (`hyper::server::conn::http1`, on a duplex
//!   pipe) reads too, with the same body — `Content-Length` or chunked, decoded — and so every
//!   request after it on the connection (the grammar sometimes pipelines a second one: where the
//!   two would end the first request at different bytes, the second tells). Where hyper refuses,
//!   we refuse.
//! - `responses_we_read_hyper_reads_alike`: a response our client (`transport::http1`, on a
//!   real socket) reads, hyper's client (`hyper::client::conn::http1`) reads with the same status
//!   and body.
//!
//! Where we refuse what hyper reads, we are stricter on purpose (docs/SECURITY.md: as strict as
//! nginx): allowed, and counted by our reason with an example of each, printed at the end
//! (`cargo test http::differential -- --nocapture`). A failure is shrunk to a small message and
//! shown as its bytes. The seed is fixed so that a run is repeatable; `PROPTEST_RNG_SEED` tries
//! others and `PROPTEST_CASES` runs more cases.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::body::{self, RequestBody};
use super::conns::Conns;
use super::head::{self, Parsed};
use super::limits::{Edge, Limits};
use super::{framing, h1};

/// Cases per property: enough that a codec loosened in one of the ways the grammar reaches (a
/// sign taken in a length, a bare LF in a chunk extension, a coding padded with NBSP) fails at
/// this count, few enough for a debug build to run all three in well under a second.
const CASES: u32 = 512;
/// A case that takes longer than this hangs, which is a failure of its own.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The messages.

/// A message as generated, kept in parts so that a failing one shrinks to the part that matters;
/// shown as its bytes.
#[derive(Clone)]
struct Message {
    /// The request or status line with its line end (for a response, possibly an interim
    /// response before it).
    start: Vec<u8>,
    fields: Vec<Field>,
    /// The empty line that ends the head.
    head_end: Vec<u8>,
    body: Body,
    /// What follows the message on the connection.
    tail: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Field {
    name: Vec<u8>,
    value: Value,
    /// obs-fold: a line end and this, which starts with a space or a tab.
    fold: Option<Vec<u8>>,
    end: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Value {
    Lit(Vec<u8>),
    /// The length of the body as sent, off by `delta`, with `before` and `after` around it; when
    /// `again`, a list: the length once more, off by that.
    Length {
        before: Vec<u8>,
        delta: i8,
        again: Option<i8>,
        after: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
struct Body {
    shape: Shape,
    raw: Vec<u8>,
    chunked: Chunked,
}

/// Which of its two forms a body takes on the wire.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Chunked if the head has a `Transfer-Encoding` field, else raw: mostly what the head says.
    AsSaid,
    Raw,
    Chunked,
}

#[derive(Clone, Debug)]
struct Chunked {
    chunks: Vec<Chunk>,
    last: SizeLine,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    end: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Chunk {
    line: SizeLine,
    data: Vec<u8>,
    /// What should be CRLF.
    data_end: Vec<u8>,
}

#[derive(Clone, Debug)]
struct SizeLine {
    before: Vec<u8>,
    /// No digits at all.
    empty: bool,
    zeros: usize,
    upper: bool,
    delta: i8,
    after: Vec<u8>,
    end: Vec<u8>,
}

impl Message {
    fn is_chunked(&self) -> bool {
        match self.body.shape {
            Shape::AsSaid => self.fields.iter().any(|f| f.name.eq_ignore_ascii_case(b"transfer-encoding")),
            Shape::Raw => false,
            Shape::Chunked => true,
        }
    }

    fn wire(&self) -> Vec<u8> {
        let body = if self.is_chunked() { self.body.chunked.wire() } else { self.body.raw.clone() };
        let mut out = self.start.clone();
        for f in &self.fields {
            out.extend_from_slice(&f.name);
            out.extend_from_slice(b": ");
            match &f.value {
                Value::Lit(v) => out.extend_from_slice(v),
                Value::Length { before, delta, again, after } => {
                    out.extend_from_slice(before);
                    out.extend_from_slice(off(body.len(), *delta).to_string().as_bytes());
                    if let Some(d) = again {
                        out.extend_from_slice(b", ");
                        out.extend_from_slice(off(body.len(), *d).to_string().as_bytes());
                    }
                    out.extend_from_slice(after);
                }
            }
            if let Some(fold) = &f.fold {
                out.extend_from_slice(&f.end);
                out.extend_from_slice(fold);
            }
            out.extend_from_slice(&f.end);
        }
        out.extend_from_slice(&self.head_end);
        out.extend_from_slice(&body);
        out.extend_from_slice(&self.tail);
        out
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.wire().escape_ascii())
    }
}

impl Chunked {
    fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.chunks {
            c.line.write(&mut out, c.data.len());
            out.extend_from_slice(&c.data);
            out.extend_from_slice(&c.data_end);
        }
        self.last.write(&mut out, 0);
        for (line, end) in &self.trailers {
            out.extend_from_slice(line);
            out.extend_from_slice(end);
        }
        out.extend_from_slice(&self.end);
        out
    }
}

impl SizeLine {
    fn write(&self, out: &mut Vec<u8>, size: usize) {
        out.extend_from_slice(&self.before);
        if !self.empty {
            out.extend(std::iter::repeat_n(b'0', self.zeros));
            let n = off(size, self.delta);
            let hex = if self.upper { format!("{n:X}") } else { format!("{n:x}") };
            out.extend_from_slice(hex.as_bytes());
        }
        out.extend_from_slice(&self.after);
        out.extend_from_slice(&self.end);
    }
}

fn off(n: usize, delta: i8) -> usize {
    n.saturating_add_signed(isize::from(delta))
}

// ---------------------------------------------------------------------------------------------
// The grammar.
//
// A message is tame or wild. In a tame one only the framing is perturbed — the framing field's
// value, the chunk-size lines, the chunks' ends, the trailers — so that many reach their body; in
// a wild one any line may be: its end, a field's name (case aside) and padding, an obs-fold, the
// request line, other fields with control bytes. Either way a field name's case is any.

const NBSP: &[u8] = "\u{a0}".as_bytes();
const IDEOGRAPHIC_SPACE: &[u8] = "\u{3000}".as_bytes();
const NEL: &[u8] = "\u{85}".as_bytes();

type Of<T> = BoxedStrategy<T>;

fn pick(options: &'static [&'static [u8]]) -> Of<Vec<u8>> {
    prop::sample::select(options).prop_map(<[u8]>::to_vec).boxed()
}

fn nothing() -> Of<Vec<u8>> {
    Just(Vec::new()).boxed()
}

/// Mostly nothing; else bytes that are whitespace to someone: space and tab (to everyone),
/// Unicode spaces (to `str::trim`), control bytes (to some).
fn pad() -> Of<Vec<u8>> {
    prop_oneof![
        8 => nothing(),
        2 => pick(&[b" ", b"\t", b"  ", b" \t"]),
        1 => pick(&[NBSP, IDEOGRAPHIC_SPACE, NEL]),
        1 => pick(&[b"\x0b", b"\x0c", b"\0", b"\r"]),
    ]
    .boxed()
}

fn eol(wild: bool) -> Of<Vec<u8>> {
    if !wild {
        return Just(b"\r\n".to_vec()).boxed();
    }
    prop_oneof![20 => Just(b"\r\n".to_vec()), 2 => Just(b"\n".to_vec()), 1 => pick(&[b"\r", b"\r\r\n", b"\n\r"])]
        .boxed()
}

fn mixed_case(name: &'static str) -> Of<Vec<u8>> {
    let mixed = prop::collection::vec(any::<bool>(), name.len())
        .prop_map(move |up| name.bytes().zip(up).map(|(b, up)| if up { b.to_ascii_uppercase() } else { b }).collect());
    prop_oneof![2 => Just(name.as_bytes().to_vec()), 1 => mixed].boxed()
}

/// A field name in any case; in a wild message, sometimes with a space or tab before the colon,
/// a space before it (an obs-fold of the line before) or a NUL inside.
fn name(base: &'static str, wild: bool) -> Of<Vec<u8>> {
    if !wild {
        return mixed_case(base);
    }
    (mixed_case(base), prop_oneof![24 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)])
        .prop_map(|(mut n, quirk)| {
            match quirk {
                1 => n.push(b' '),
                2 => n.push(b'\t'),
                3 => n.insert(0, b' '),
                4 => n.insert(n.len() / 2, 0),
                _ => {}
            }
            n
        })
        .boxed()
}

/// A `Content-Length` value: mostly the body's length, sometimes off by one, with a sign, a
/// list, junk, padding; or a literal that is no length.
fn length() -> Of<Value> {
    let delta = || prop_oneof![12 => Just(0i8), 1 => Just(-1), 1 => Just(1)];
    let computed = (
        pad(),
        prop_oneof![4 => nothing(), 1 => pick(&[b"+", b"+", b"-", b"0", b"00", b"0x"])],
        delta(),
        prop_oneof![20 => Just(None), 1 => delta().prop_map(Some)],
        prop_oneof![20 => nothing(), 1 => pick(&[b",", b";", b"x", b" 1", b".0", b"\x005"])],
        pad(),
    )
        .prop_map(|(pad1, sign, delta, again, junk, pad2)| Value::Length {
            before: [pad1, sign].concat(),
            delta,
            again,
            after: [junk, pad2].concat(),
        });
    let literal = pick(&[
        b"0x5",
        b"5 5",
        b"",
        b"abc",
        b"18446744073709551615",
        b"99999999999999999999",
        b"\xef\xbc\x95", // a fullwidth 5
        b"1e1",
        b"-0",
    ])
    .prop_map(Value::Lit);
    prop_oneof![20 => computed, 1 => literal].boxed()
}

/// A `Transfer-Encoding` value: mostly `chunked`, else a coding list or an impostor, padded.
fn coding() -> Of<Value> {
    let word = prop_oneof![
        9 => Just(b"chunked".to_vec()),
        3 => pick(&[
            b"Chunked",
            b"CHUNKED",
            b"gzip, chunked",
            b"chunked, identity",
            b"identity",
            b"xchunked",
            b"chunked;",
            b"chunk",
            b"",
            b"gzip",
            b"chunked,",
            b"chunked, chunked",
            b"\"chunked\"",
            b"gzip,chunked",
            b",chunked",
        ]),
    ];
    (pad(), word, pad()).prop_map(|(a, w, b)| Value::Lit([a, w, b].concat())).boxed()
}

fn literal(options: &'static [&'static [u8]], wild: bool) -> Of<Value> {
    if !wild {
        return pick(options).prop_map(Value::Lit).boxed();
    }
    let pad = || prop_oneof![3 => nothing(), 1 => pad()];
    (pad(), pick(options), pad()).prop_map(|(a, w, b)| Value::Lit([a, w, b].concat())).boxed()
}

/// The field that frames the body, or none: every message gets one chance at it, before
/// whatever other fields come (which may frame it again).
fn framing_field(wild: bool) -> Of<Vec<Field>> {
    let named =
        prop_oneof![2 => (name("content-length", wild), length()), 3 => (name("transfer-encoding", wild), coding())];
    let field = (named, eol(wild)).prop_map(|((name, value), end)| Field { name, value, fold: None, end });
    prop_oneof![1 => Just(Vec::new()), 4 => field.prop_map(|f| vec![f])].boxed()
}

fn field(wild: bool) -> Of<Field> {
    let other = if wild {
        prop_oneof![
            8 => literal(&[b"1", b"application/json", b"\xff", b"chunked"], true),
            1 => literal(&[b"a\0b", b"a\x7fb", b"a\x1bb"], true),
        ]
        .boxed()
    } else {
        literal(&[b"1", b"application/json", b"\xff", b"chunked"], false)
    };
    let other_name = if wild {
        prop_oneof![8 => pick(&[b"x-trace", b"content-type", b"te", b"trailer"]), 1 => pick(&[b"content_length", b"transfer_encoding", b"x y"])].boxed()
    } else {
        pick(&[b"x-trace", b"content-type", b"te", b"trailer", b"content_length", b"transfer_encoding"])
    };
    // A tame message frames its body twice less often, so that more of them are read.
    let twice = if wild { 3 } else { 1 };
    let named = prop_oneof![
        twice => (name("content-length", wild), length()),
        twice => (name("transfer-encoding", wild), coding()),
        twice => (name("host", wild), literal(&[b"a", b"a:1", b"A", b"b", b"a b", b"u@a", b"[::1]:80", b"", b"a:", b"a:123456"], wild)),
        2 => (name("connection", wild), literal(&[b"close", b"keep-alive", b"Keep-Alive, close", b"upgrade", b"close, te"], wild)),
        2 => (name("expect", wild), prop_oneof![3 => literal(&[b"100-continue", b"100-Continue"], wild), 1 => literal(&[b"200-ok", b""], wild)]),
        4 => (other_name, other),
    ];
    let fold = if wild {
        prop_oneof![20 => Just(None), 1 => pick(&[b" x", b"\tx", b" chunked"]).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    };
    (named, fold, eol(wild)).prop_map(|((name, value), fold, end)| Field { name, value, fold, end }).boxed()
}

/// A chunk-size line: mostly plain hex; else a sign, spaces, `0x`, NBSP before it, no digits,
/// leading zeros (16 of them: more digits than a size has), a size off by one, spaces or an
/// extension after it (one with a bare LF, one with a bare CR), a line end other than CRLF.
fn size_line() -> Of<SizeLine> {
    (
        prop_oneof![24 => nothing(), 1 => pick(&[b"+", b"-", b" ", b"\t", b"0x", NBSP])],
        prop_oneof![40 => Just(false), 1 => Just(true)],
        prop_oneof![20 => Just(0usize), 1 => Just(1), 1 => Just(16)],
        any::<bool>(),
        prop_oneof![30 => Just(0i8), 1 => Just(-1), 1 => Just(1)],
        prop_oneof![
            12 => nothing(),
            3 => pick(&[b" ", b"\t", b";a=b", b" ;a", b";a=\"b c\"", b";\0", b";"]),
            2 => pick(&[b";a\nb", b";a\rb", NBSP, b"x", b" 1"]),
        ],
        prop_oneof![30 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b"\r", b"\n\r"])],
    )
        .prop_map(|(before, empty, zeros, upper, delta, after, end)| SizeLine {
            before,
            empty,
            zeros,
            upper,
            delta,
            after,
            end,
        })
        .boxed()
}

fn data() -> Of<Vec<u8>> {
    let byte = prop_oneof![12 => b'a'..=b'z', 1 => prop::sample::select(&b"\r\n0;"[..])];
    prop::collection::vec(byte, 0..12).boxed()
}

fn chunked() -> Of<Chunked> {
    let data_end = prop_oneof![30 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b"", b"\r", b"x\r\n"])];
    let chunk = (size_line(), data(), data_end).prop_map(|(line, data, data_end)| Chunk { line, data, data_end });
    let trailer = (
        pick(&[
            b"x-t: 1",
            b"x-t: 1",
            b"bad",
            b"x-t: a\0b",
            b" x: fold",
            b"x-t:",
            b"content-length: 5",
            b"x t: 1",
            b"x-t: \xc2\xa0",
            b": 1",
        ]),
        prop_oneof![8 => Just(b"\r\n".to_vec()), 1 => Just(b"\n".to_vec())],
    );
    (
        prop::collection::vec(chunk, 0..4),
        size_line(),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(trailer, 1..3)],
        prop_oneof![12 => Just(b"\r\n".to_vec()), 1 => pick(&[b"\n", b""])],
    )
        .prop_map(|(chunks, last, trailers, end)| Chunked { chunks, last, trailers, end })
        .boxed()
}

fn body() -> Of<Body> {
    let shape = prop_oneof![8 => Just(Shape::AsSaid), 1 => Just(Shape::Raw), 1 => Just(Shape::Chunked)];
    (shape, data(), chunked()).prop_map(|(shape, raw, chunked)| Body { shape, raw, chunked }).boxed()
}

fn request() -> Of<Message> {
    prop_oneof![3 => request_of(false), 1 => request_of(true)].boxed()
}

fn request_of(wild: bool) -> Of<Message> {
    let method = if wild {
        prop_oneof![
            4 => pick(&[b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"post", b"M-SEARCH"]),
            1 => pick(&[b"G\"T", b"", b"GET\0", b"G\xc3\x89T"]),
        ]
        .boxed()
    } else {
        prop_oneof![3 => pick(&[b"GET", b"POST"]), 1 => pick(&[b"PUT", b"DELETE", b"HEAD", b"post"])].boxed()
    };
    let target = if wild {
        prop_oneof![
            2 => pick(&[b"/mcp", b"/", b"/mcp?x=1"]),
            3 => pick(&[
                b"http://a/mcp",
                b"HTTP://A/mcp",
                b"http://b/mcp",
                b"http://u@a/mcp",
                b"ftp://a/mcp",
                b"http://a",
                b"*",
                b"mcp",
                b"//a",
                b"/%zz",
                b"/a\0b",
                b"/\xc3\xa9",
                b"/a#b",
            ]),
        ]
        .boxed()
    } else {
        prop_oneof![4 => pick(&[b"/mcp", b"/", b"/mcp?x=1"]), 1 => pick(&[b"http://a/mcp", b"HTTP://A/mcp", b"*"])]
            .boxed()
    };
    let version = if wild {
        prop_oneof![
            4 => pick(&[b"HTTP/1.1", b"HTTP/1.0"]),
            1 => pick(&[b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1.10", b"HTTP/0.9"]),
        ]
        .boxed()
    } else {
        prop_oneof![8 => Just(b"HTTP/1.1".to_vec()), 1 => Just(b"HTTP/1.0".to_vec())].boxed()
    };
    let space = || {
        if wild {
            prop_oneof![12 => Just(b" ".to_vec()), 1 => pick(&[b"  ", b"\t"])].boxed()
        } else {
            Just(b" ".to_vec()).boxed()
        }
    };
    // Most requests name their Host once, plainly: a request refused for its Host alone tells
    // nothing about its framing.
    let host = prop_oneof![6 => Just(true), 1 => Just(false)];
    let tail = prop_oneof![
        6 => Just(Vec::new()),
        2 => Just(b"GET /next HTTP/1.1\r\nhost: a\r\n\r\n".to_vec()),
        1 => pick(&[b"X", b"0\r\n\r\n", b"\r\n", b"GET /next HTTP/1.1\nhost: a\n\n"]),
    ];
    let fields = (framing_field(wild), prop::collection::vec(field(wild), 0..3));
    ((method, space(), target, space(), version, eol(wild)), fields, (host, 0..5usize), eol(wild), body(), tail)
        .prop_map(|((method, sp1, target, sp2, version, end), (mut fields, more), (host, at), head_end, body, tail)| {
            fields.extend(more);
            if host {
                let plain = Field {
                    name: b"host".to_vec(),
                    value: Value::Lit(b"a".to_vec()),
                    fold: None,
                    end: b"\r\n".to_vec(),
                };
                fields.insert(at.min(fields.len()), plain);
            }
            Message { start: [method, sp1, target, sp2, version, end].concat(), fields, head_end, body, tail }
        })
        .boxed()
}

fn response() -> Of<Message> {
    prop_oneof![2 => response_of(false), 1 => response_of(true)].boxed()
}

fn response_of(wild: bool) -> Of<Message> {
    let odd = pick(&[
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 999 X",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 \xffK",
    ]);
    let status = if wild {
        prop_oneof![3 => odd, 1 => pick(&[b"HTTP/1.1 20 OK", b"HTTP/2 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200 O\0K"])].boxed()
    } else {
        prop_oneof![
            8 => Just(b"HTTP/1.1 200 OK".to_vec()),
            2 => pick(&[b"HTTP/1.0 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 500 Oops"]),
            1 => odd,
        ]
        .boxed()
    };
    (status, eol(wild), framing_field(wild), prop::collection::vec(field(wild), 0..3), eol(wild), body())
        .prop_map(|(status, end, mut fields, more, head_end, body)| {
            fields.extend(more);
            Message { start: [status, end].concat(), fields, head_end, body, tail: Vec::new() }
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Running them.

fn runner() -> TestRunner {
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6d63_7067);
    }
    TestRunner::new(config)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// What a side did with one request, or the response it read.
#[derive(Clone, PartialEq, Eq)]
enum Read {
    /// Read it, with this status and body.
    Body(u16, Vec<u8>),
    /// Refused it: the status, or how it failed.
    Refused(String),
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::Body(status, body) => write!(f, "{status} with the body \"{}\"", body.escape_ascii()),
            Read::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// What a run met: messages both sides read (and how many of them chunked), and those we refuse
/// where hyper reads them, by our reason: how many, and the shortest.
#[derive(Default)]
struct Tally {
    read: Cell<usize>,
    chunked: Cell<usize>,
    stricter: RefCell<BTreeMap<String, (usize, String)>>,
}

impl Tally {
    fn both_read(&self, msg: &Message) {
        self.read.set(self.read.get() + 1);
        if msg.is_chunked() {
            self.chunked.set(self.chunked.get() + 1);
        }
    }

    fn stricter(&self, why: String, msg: &Message) {
        let mut seen = self.stricter.borrow_mut();
        let example = format!("{msg:?}");
        let entry = seen.entry(why).or_insert_with(|| (0, example.clone()));
        entry.0 += 1;
        // The shortest is the clearest.
        if example.len() < entry.1.len() {
            entry.1 = example;
        }
    }

    fn print(&self, what: &str, cases: u32) {
        let seen = self.stricter.borrow();
        let stricter: usize = seen.values().map(|(n, _)| n).sum();
        println!(
            "{what}: {cases} cases; both read {} ({} of them chunked); we refuse {stricter} that hyper reads (stricter), by our reason:",
            self.read.get(),
            self.chunked.get(),
        );
        for (why, (n, example)) in seen.iter() {
            println!("  {n:4} × {why}\n         e.g. {example}");
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &[u8]) -> Vec<u8> {
    s.chunks(2).filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()).collect()
}

/// Writes `wire` whole, closes the writing half, and reads what comes back until the other side
/// closes (or resets: what arrived before is kept).
async fn talk(mut io: impl AsyncRead + AsyncWrite + Unpin, wire: &[u8]) -> Vec<u8> {
    // The other side may refuse and close before it has read everything.
    let _ = io.write_all(wire).await;
    let _ = io.shutdown().await;
    let mut out = Vec::new();
    while let Ok(n) = io.read_buf(&mut out).await {
        if n == 0 {
            break;
        }
    }
    out
}

/// The answers to the requests of a connection, in order, as both servers here give them: the
/// body read comes back hex-encoded in `x-body`; interim answers are skipped; a refusal ends the
/// connection.
fn answers(mut out: &[u8]) -> Vec<Read> {
    let mut list = Vec::new();
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(len)) = resp.parse(out) else {
            if list.last().is_none_or(|r| matches!(r, Read::Body(..))) {
                list.push(Read::Refused("closed without an answer".into()));
            }
            return list;
        };
        let code = resp.code.unwrap_or(0);
        let field = |n: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(n)).map(|h| h.value);
        let length = field("content-length").and_then(framing::content_length).unwrap_or(0) as usize;
        let read = match field("x-body") {
            Some(b) if code == 200 => Read::Body(code, unhex(b)),
            _ => Read::Refused(code.to_string()),
        };
        out = &out[(len + length).min(out.len())..];
        if (100..200).contains(&code) {
            continue;
        }
        let refused = matches!(read, Read::Refused(_));
        list.push(read);
        if refused {
            return list;
        }
    }
}

/// Our server side: `h1::serve` on a socket, with a handler that reads the body whole.
struct Ours {
    listener: TcpListener,
    conns: Arc<Conns>,
    edge: Edge,
    shutdown: CancellationToken,
}

impl Ours {
    async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        Ours { listener, conns: Arc::default(), edge: Edge::new(Limits::default()), shutdown: CancellationToken::new() }
    }

    async fn serve(&self, wire: &[u8]) -> Vec<Read> {
        let addr = self.listener.local_addr().expect("an address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), self.listener.accept());
        let (client, (stream, peer)) = (client.expect("connected"), accepted.expect("accepted"));
        let ticket = self.conns.admit(peer.ip(), &Limits::default(), 1024).expect("room for a connection");
        let conn = h1::Conn { peer, ticket: &ticket, edge: &self.edge, shutdown: &self.shutdown };
        let handler = |req: Request<RequestBody>, _: SocketAddr| async move {
            let answer = match body::read_limited(req.into_body(), usize::MAX).await {
                Ok(b) => Response::builder().header("x-body", hex(&b)),
                Err(_) => Response::builder().status(500),
            };
            answer.body(body::empty()).expect("a valid response")
        };
        let (_, out) = tokio::join!(h1::serve(stream, conn, &handler), talk(client, wire));
        answers(&out)
    }

    /// Our client: `transport::http1` (a new pool each time), against a server that answers
    /// `wire` and closes.
    async fn fetch(&self, wire: &[u8]) -> Read {
        let addr = self.listener.local_addr().expect("an address");
        let client = crate::transport::http_client::build(Duration::from_secs(5));
        let req = Request::get(format!("http://{addr}/mcp")).body(Full::new(Bytes::new())).expect("a valid request");
        let upstream = async {
            let Ok((mut s, _)) = self.listener.accept().await else { return };
            let _ = read_head(&mut s).await;
            let _ = s.write_all(wire).await;
            let _ = s.shutdown().await;
        };
        let fetch = async {
            let resp = match client.request(req).await {
                Ok(resp) => resp,
                Err(e) => return Read::Refused(e.to_string()),
            };
            let status = resp.status().as_u16();
            match resp.into_body().collect().await {
                Ok(b) => Read::Body(status, b.to_bytes().to_vec()),
                Err(e) => Read::Refused(format!("{status}, then the body: {e}")),
            }
        };
        tokio::join!(upstream, fetch).1
    }
}

/// Reads a request head (so that closing after the answer resets nothing).
async fn read_head(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(())
}

/// hyper's server on a pipe, with a service that reads the body whole.
async fn hyper_serves(wire: &[u8]) -> Vec<Read> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let service = service_fn(|req: Request<Incoming>| async move {
        let b = req.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(
            Response::builder().header("x-body", hex(&b)).body(Empty::<Bytes>::new()).expect("a valid response"),
        )
    });
    // The client closes its writing half after the request: hyper must still answer.
    let conn =
        hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(TokioIo::new(server), service);
    let (_, out) = tokio::join!(conn, talk(client, wire));
    answers(&out)
}

/// hyper's client on a pipe, against a server that answers `wire` and closes.
async fn hyper_fetches(wire: &[u8]) -> Read {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client)).await
    else {
        return Read::Refused("no handshake".into());
    };
    let upstream = async move {
        let _ = read_head(&mut server).await;
        let _ = server.write_all(wire).await;
        let _ = server.shutdown().await;
    };
    let fetch = async move {
        let req = Request::get("/mcp").header("host", "a").body(Empty::<Bytes>::new()).expect("a valid request");
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => return Read::Refused(e.to_string()),
        };
        let status = resp.status().as_u16();
        match resp.into_body().collect().await {
            Ok(b) => Read::Body(status, b.to_bytes().to_vec()),
            Err(e) => Read::Refused(format!("{status}, then the body: {e}")),
        }
    };
    tokio::join!(conn, upstream, fetch).2
}

fn refusal(read: &Read) -> &str {
    match read {
        Read::Refused(why) => why,
        Read::Body(..) => "read",
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, TestCaseError> {
    tokio::time::timeout(HANG, f).await.map_err(|_| TestCaseError::fail(format!("{what} hung")))
}

// ---------------------------------------------------------------------------------------------
// The properties.

#[test]
fn request_heads_we_accept_httparse_reads_alike() {
    let mut runner = runner();
    let result = runner.run(&request(), |msg| {
        let wire = msg.wire();
        let mut buf = BytesMut::from(&wire[..]);
        let Parsed::Head(ours) = head::parse(&mut buf) else { return Ok(()) };
        let used = wire.len() - buf.len();
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut theirs = httparse::Request::new(&mut fields);
        let len = match theirs.parse(&wire) {
            Ok(httparse::Status::Complete(len)) => len,
            other => return Err(TestCaseError::fail(format!("we accept the head, httparse says {other:?}"))),
        };
        prop_assert_eq!(len, used, "the head's length");
        prop_assert_eq!(theirs.method, Some(ours.request.method().as_str()));
        let version = if ours.request.version() == http::Version::HTTP_10 { 0 } else { 1 };
        prop_assert_eq!(theirs.version, Some(version));
        // The target as we keep it; a scheme comes back in lower case.
        let uri = ours.request.uri();
        let pq = uri.path_and_query().map_or("", |p| p.as_str());
        let target = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}{pq}"),
            _ => pq.to_owned(),
        };
        // A fragment is no part of the target (RFC 9110 §4.2.4): `Uri` drops it.
        let path = theirs.path.unwrap_or("").split('#').next().unwrap_or("");
        let path = match path.find("://") {
            // An absolute target without a path has the path `/` (RFC 9110 §4.2.3).
            Some(i) if !path[i + 3..].contains('/') => format!("{}{}/", path[..i].to_ascii_lowercase(), &path[i..]),
            Some(i) => format!("{}{}", path[..i].to_ascii_lowercase(), &path[i..]),
            None => path.to_owned(),
        };
        prop_assert_eq!(target, path);
        // Every field reaches the handler but the framing ones, which the codec acts on.
        let framing = theirs
            .headers
            .iter()
            .filter(|h| {
                h.name.eq_ignore_ascii_case("content-length") || h.name.eq_ignore_ascii_case("transfer-encoding")
            })
            .count();
        prop_assert_eq!(ours.request.headers().len() + framing, theirs.headers.len(), "the number of fields");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn requests_we_read_hyper_reads_alike() {
    let rt = runtime();
    let ours = rt.block_on(Ours::new());
    let tally = Tally::default();
    let mut runner = runner();
    let cases = runner.config().cases;
    let result = runner.run(&request(), |msg| {
        let wire = msg.wire();
        let (we, they) = rt.block_on(async {
            Ok::<_, TestCaseError>((
                within("our server", ours.serve(&wire)).await?,
                within("hyper", hyper_serves(&wire)).await?,
            ))
        })?;
        if let Some(Read::Body(..)) = we.first() {
            tally.both_read(&msg);
        }
        for (i, read) in we.iter().enumerate() {
            if let Read::Body(..) = read {
                if they.get(i) != Some(read) {
                    let theirs = they.get(i).map_or("nothing".to_owned(), |r| format!("{r:?}"));
                    return Err(TestCaseError::fail(format!(
                        "request {} of the connection: we read {read:?}, hyper {theirs}",
                        i + 1
                    )));
                }
            } else if let Some(Read::Body(..)) = they.get(i) {
                // Why we refused: the head's reason, or its body's framing.
                let why = match head::parse(&mut BytesMut::from(&wire[..])) {
                    Parsed::Refused(status, why) if i == 0 => format!("{status}: {why}"),
                    _ if i == 0 => format!("{} while reading the body", refusal(read)),
                    _ => format!("request {} on the connection: {}", i + 1, refusal(read)),
                };
                tally.stricter(why, &msg);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    tally.print("requests", cases);
}

#[test]
fn responses_we_read_hyper_reads_alike() {
    let rt = runtime();
    let ours = rt.block_on(Ours::new());
    let tally = Tally::default();
    let mut runner = runner();
    let cases = runner.config().cases;
    let result = runner.run(&response(), |msg| {
        let wire = msg.wire();
        let (we, they) = rt.block_on(async {
            Ok::<_, TestCaseError>((
                within("our client", ours.fetch(&wire)).await?,
                within("hyper", hyper_fetches(&wire)).await?,
            ))
        })?;
        match (&we, &they) {
            (Read::Body(..), _) if we != they => {
                return Err(TestCaseError::fail(format!("we read {we:?}, hyper {they:?}")));
            }
            (Read::Refused(why), Read::Body(..)) => tally.stricter(why.clone(), &msg),
            (Read::Body(..), _) => tally.both_read(&msg),
            _ => {}
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    tally.print("responses", cases);
}
