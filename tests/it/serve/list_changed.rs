//! A server's `list_changed`: the client is told, on its GET stream, and its next listing is
//! the server's new one (the gateway's cached listing is dropped).

use std::time::Duration;

use serde_json::json;

use super::*;

/// On every route: server-everything's `gzip-file-as-resource` adds a resource for the caller's
/// session (from a `data:` URL, nothing fetched) and says `notifications/resources/list_changed`;
/// the client hears it (on the call's stream, or its own GET stream), then finds the resource in
/// its listing and can read it — even after another client, alike in what it declared, listed
/// in between (on the remote routes, where the server keeps a session per client, that other
/// client's listing does not have it).
#[tokio::test]
async fn a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route() {
    change_and_list(&ROUTES, "serve-list-changed").await;
}

async fn change_and_list(routes: &'static [Route], name: &str) {
    let m = Matrix::start(name, json!({}), json!({}), false).await;
    on_routes(&m, routes, move |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        let listed = |sid: String| {
            let url = url.clone();
            async move {
                let r = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#).await.message();
                r["result"]["resources"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{route}: {r}"))
                    .iter()
                    .map(|r| r["uri"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        // Listed once, so that a stale cached listing would show.
        let file = format!("{route:?}.gz");
        let own = format!("demo://resource/session/{file}");
        // As the client sees it (on the merged endpoint, naming its server).
        let uri = route.uri(&own);
        assert!(!listed(sid.clone()).await.contains(&uri), "{route}");
        let args = json!({"name": file, "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"});
        let reply = call(&url, &sid, &[], &tool_call(json!(5), &route.name("gzip-file-as-resource"), args)).await;
        let r = reply.message();
        // A link in a tool's result is the server's own (a read of it is routed by its URI).
        assert!(r["result"]["content"][0]["uri"] == own.as_str(), "{route}: {r}");
        // Told on the call's own stream (as the server sent it there), or kept for the
        // session until it listens.
        if !reply.body.contains("notifications/resources/list_changed") {
            let mut events = Sse::get(&url, &sid).await;
            let told = events.until(Duration::from_secs(5), is("notifications/resources/list_changed")).await;
            assert!(told.is_ok(), "{route}: not told of the change; the GET stream had {told:?}\n{}", m.output());
        }
        // Another client lists first (a listing shared by clients alike would now be its).
        let other = listed(session(&url).await).await;
        if !route.stdio() {
            assert!(!other.contains(&uri), "{route}: another session's resource listed: {other:?}");
        }
        let now = listed(sid.clone()).await;
        assert!(now.contains(&uri), "{route}: {uri} missing from the listing after the change: {now:?}");
        let read = json!({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri": uri}}).to_string();
        let r = call(&url, &sid, &[], &read).await.message();
        assert!(r["result"]["contents"][0]["blob"].is_string(), "{route}: {r}");
    })
    .await;
}
