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

mod grammar;
mod peers;

use crate::http::head::{self, Parsed};
use bytes::BytesMut;
use grammar::*;
use peers::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

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
