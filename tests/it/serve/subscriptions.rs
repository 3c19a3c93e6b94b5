//! Subscriptions: each subscriber gets the updates of what it subscribed to, and one client's
//! unsubscribe does not stop them for another — on a stdio server that all clients share (the
//! gateway keeps the subscription upstream while anyone wants it) and on a remote server (a
//! session upstream per client).

use std::time::Duration;

use serde_json::json;

use super::*;

/// (Re)starts server-everything's simulated updates from the session `sid`, so that one goes
/// out at once: off first if they were on (on a stdio server they are one switch for everyone).
async fn restart_updates(url: &str, sid: &str, tool: &str) {
    let r = call_text(url, sid, tool, json!({})).await;
    let r = if text_of(&r).starts_with("Stopped") { call_text(url, sid, tool, json!({})).await } else { r };
    assert!(text_of(&r).starts_with("Started"), "{r}");
}

/// On every route, two clients subscribed to the same resource: both hear its update; then `a`
/// unsubscribes, and the next update reaches `b` only.
#[tokio::test]
async fn subscriptions_are_kept_per_client_on_every_route() {
    // Apart: each server-everything on an endpoint of its own, so each route's resource URIs
    // are its server's alone.
    let m = Matrix::start("serve-subscribe", json!({}), json!({}), true).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let (a, b) = (session(&url).await, session(&url).await);
        let list = call(&url, &a, &[], r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#).await.message();
        let uri = list["result"]["resources"]
            .as_array()
            .and_then(|l| l.iter().filter_map(|r| r["uri"].as_str()).find(|u| u.starts_with(&route.uri("demo://"))))
            .unwrap_or_else(|| panic!("{route}: {list}"))
            .to_owned();
        let sub = |id: u32, m: &str| json!({"jsonrpc":"2.0","id":id,"method":m,"params":{"uri":uri}}).to_string();
        for s in [&a, &b] {
            let r = call(&url, s, &[], &sub(2, "resources/subscribe")).await.message();
            assert!(r["result"].is_object(), "{route}: {r}");
        }
        let toggle = route.name("toggle-subscriber-updates");
        // Both subscribed: both hear the first update (sent at once by the toggle; on a remote
        // server each client's session has its own).
        restart_updates(&url, &a, &toggle).await;
        if !route.stdio() {
            restart_updates(&url, &b, &toggle).await;
        }
        let updated =
            |m: &Value| m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri.as_str();
        let (mut sa, mut sb) = (Sse::get(&url, &a).await, Sse::get(&url, &b).await);
        for (s, who) in [(&mut sa, "a"), (&mut sb, "b")] {
            let heard = s.until(Duration::from_secs(10), updated).await;
            assert!(heard.is_ok(), "{route}: {who} did not hear the update: {heard:?}\n{}", m.output());
        }
        // a leaves; the next update reaches b, not a.
        let r = call(&url, &a, &[], &sub(3, "resources/unsubscribe")).await.message();
        assert!(r["result"].is_object(), "{route}: {r}");
        restart_updates(&url, &a, &toggle).await;
        if !route.stdio() {
            restart_updates(&url, &b, &toggle).await;
        }
        let heard = sb.until(Duration::from_secs(10), updated).await;
        assert!(heard.is_ok(), "{route}: b still subscribed: {heard:?}\n{}", m.output());
        // Sent to a at the same time if at all: by now it would be on a's stream.
        let not = sa.until(Duration::from_millis(500), updated).await;
        assert!(not.is_err(), "{route}: a unsubscribed, yet heard {not:?}");
    })
    .await;
}

/// Two servers offering the same resource URIs on one merged endpoint (server-everything as a
/// stdio child and over HTTP): each URI is listed once per server, naming it; each can be read
/// and subscribed to; and the updates of both arrive, each under the URI its subscriber used.
#[tokio::test]
async fn two_servers_with_the_same_resource_uris_are_both_reachable_and_subscribable() {
    let m = Matrix::start("serve-same-uris", json!({}), json!({}), false).await;
    let url = m.url(MergedStdio);
    let sid = session(&url).await;
    let list = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#).await.message();
    let uris: Vec<&str> =
        list["result"]["resources"].as_array().unwrap().iter().filter_map(|r| r["uri"].as_str()).collect();
    let own = uris
        .iter()
        .find_map(|u| u.strip_prefix("mcpgate://local/").filter(|u| u.starts_with("demo://")))
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();
    let both = [MergedStdio.uri(&own), MergedRemote.uri(&own)];
    for uri in &both {
        assert_eq!(uris.iter().filter(|u| **u == uri.as_str()).count(), 1, "{uri} listed once: {uris:?}");
        let read = json!({"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri": uri}}).to_string();
        let r = call(&url, &sid, &[], &read).await.message();
        assert_eq!(r["result"]["contents"][0]["uri"], own.as_str(), "{uri}: {r}");
        let sub = json!({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri": uri}}).to_string();
        let r = call(&url, &sid, &[], &sub).await.message();
        assert!(r["result"].is_object(), "{uri}: {r}");
    }
    let mut events = Sse::get(&url, &sid).await;
    for route in [MergedStdio, MergedRemote] {
        restart_updates(&url, &sid, &route.name("toggle-subscriber-updates")).await;
    }
    // Both, in whichever order they come.
    let heard = std::sync::Mutex::new(std::collections::HashSet::new());
    let got = events
        .until(Duration::from_secs(10), |m| {
            let mut heard = heard.lock().unwrap();
            if m["method"] == "notifications/resources/updated" {
                heard.insert(m["params"]["uri"].as_str().unwrap_or_default().to_owned());
            }
            both.iter().all(|u| heard.contains(u))
        })
        .await;
    assert!(got.is_ok(), "updates heard for {:?} of {both:?}: {got:?}\n{}", heard.lock().unwrap(), m.output());
}

/// One session holds at most 1,024 subscriptions: each is an entry the gateway keeps until the
/// session unsubscribes or ends (and its end takes them back), so a client cannot grow it
/// without bound; the next is refused, saying so, and an unsubscribe makes room.
#[tokio::test]
async fn a_session_holds_a_bounded_number_of_subscriptions() {
    let dir = tempdir("serve-subscription-cap");
    let gw = serve_ready(&dir, json!({"local": echo_server(&dir)})).await;
    let sid = open_session(&gw.url, &[]).await;
    let sub = |m: &str, i: usize| {
        json!({"jsonrpc":"2.0","id":i,"method":m,"params":{"uri": format!("demo://r/{i}")}}).to_string()
    };
    for i in 0..1024 {
        let m = call(&gw.url, &sid, &[], &sub("resources/subscribe", i)).await.message();
        assert!(!m["error"]["message"].as_str().unwrap_or_default().contains("subscriptions already"), "{i}: {m}");
    }
    let m = call(&gw.url, &sid, &[], &sub("resources/subscribe", 1024)).await.message();
    assert_eq!(m["error"]["code"], -32602, "{m}");
    assert!(m["error"]["message"].as_str().unwrap().contains("1024 subscriptions"), "{m}");
    call(&gw.url, &sid, &[], &sub("resources/unsubscribe", 0)).await;
    let m = call(&gw.url, &sid, &[], &sub("resources/subscribe", 1024)).await.message();
    assert!(!m["error"]["message"].as_str().unwrap_or_default().contains("subscriptions already"), "{m}");
}
