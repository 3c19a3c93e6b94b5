//! A stdio server that keeps state per client (`"stateful": true`): each client session gets a
//! child of its own, started at its first call and stopped when the session ends; the gateway
//! keeps one more for what it asks on everyone's behalf (listings, the server's identity).
//! Everything the child sends then belongs to that one client, without guessing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::backend::{CallFuture, Health, Link, Outgoing, ServerInfo};
use super::child::ChildLink;
use super::session::Client;
use crate::config::Restart;
use crate::mcp::session::Session;
use crate::transport::stdio_child::Spec;

pub struct StatefulLink {
    name: String,
    spec: Spec,
    restart: Restart,
    start_timeout: Duration,
    unsolicited: super::backend::UnsolicitedTx,
    shared: Arc<ChildLink>,
    per_client: Mutex<HashMap<String, Arc<ChildLink>>>,
}

impl StatefulLink {
    pub fn start(
        name: &str,
        spec: Spec,
        restart: Restart,
        start_timeout: Duration,
        unsolicited: super::backend::UnsolicitedTx,
    ) -> Arc<StatefulLink> {
        let hello = (None, super::backend::gateway_hello());
        let shared = ChildLink::start(name, hello, spec.clone(), restart, start_timeout, unsolicited.clone());
        Arc::new(StatefulLink {
            name: name.to_owned(),
            spec,
            restart,
            start_timeout,
            unsolicited,
            shared,
            per_client: Mutex::default(),
        })
    }

    /// The client's own child, started on first use (its calls wait for it to be ready).
    fn child(&self, client: &Session<Client>) -> Arc<ChildLink> {
        let mut all = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = all.get(client.id()) {
            return c.clone();
        }
        let c = ChildLink::start(
            &self.name,
            (Some(client.id().to_owned()), super::backend::client_hello(&client.upstream.init())),
            self.spec.clone(),
            self.restart,
            self.start_timeout,
            self.unsolicited.clone(),
        );
        all.insert(client.id().to_owned(), c.clone());
        tracing::info!(server = %self.name, session = client.label(), "started a child for this client");
        c
    }
}

impl Link for StatefulLink {
    fn call<'a>(&'a self, client: Option<&'a Arc<Session<Client>>>, out: Outgoing<'a>) -> CallFuture<'a> {
        Box::pin(async move {
            match client {
                None => self.shared.call(None, out).await,
                Some(c) => self.child(c).call(Some(c), out).await,
            }
        })
    }

    fn notify(&self, client: &Arc<Session<Client>>, method: &str, params: Value) {
        let child = self.per_client.lock().unwrap_or_else(|p| p.into_inner()).get(client.id()).cloned();
        if let Some(c) = child {
            c.notify(client, method, params);
        }
    }

    fn info(&self) -> Option<ServerInfo> {
        self.shared.info()
    }

    fn per_client(&self) -> bool {
        true
    }

    fn forget(&self, client: &Session<Client>) {
        let child = self.per_client.lock().unwrap_or_else(|p| p.into_inner()).remove(client.id());
        if let Some(c) = child {
            tokio::spawn(async move { c.stop(Duration::from_secs(5)).await });
        }
    }

    fn health(&self) -> Health {
        self.shared.health()
    }

    fn restarts(&self) -> u64 {
        self.shared.restarts()
    }

    fn retry_in(&self) -> Option<Duration> {
        self.shared.retry_in()
    }

    fn start_failed(&self) -> bool {
        self.shared.start_failed()
    }

    fn stop(&self, grace: Duration) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let all: Vec<Arc<ChildLink>> =
                self.per_client.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, c)| c).collect();
            for c in all {
                c.stop(grace).await;
            }
            self.shared.stop(grace).await;
        })
    }
}
