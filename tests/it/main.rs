//! mcpgate's integration tests: one test binary, one module per behaviour. Everything here
//! runs real processes on loopback: mcpgate itself, MCP servers from npm, our conformance
//! fixture, the official TypeScript SDK client.

mod config_edge;
mod conformance;
mod connect_credentials;
mod connect_faults;
mod connect_front;
mod connect_identities;
mod connect_limits;
mod connect_sdk;
mod connect_streams;
mod edge_corpus;
mod edge_limits;
mod eras;
mod harness;
mod idp;
mod install;
mod issuer;
mod keychain;
mod serve;
mod stdio_bridge;
mod stdio_dpop;
mod stdio_login;
