//! `mcpgate.auth`: who may call the gateway. `mode` `"none"` (loopback, or beyond it only with
//! `allowUnauthenticated`), or `"jwt"`: tokens from an external issuer, checked against its keys.
//! Unset fields of the `jwt` mode fall back to the environment names the Auth0 and OpenID proxies'
//! users already have (`OIDC_ISSUER_URL`, `AUTH0_DOMAIN`, `MCP_BASE_URL`, `AUTH0_AUDIENCE`).

use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{Check, Members, Node, Value, get, join};
use crate::authn::{Keys, Settings, StaticKeys};
use crate::config::{Auth, Secret};

const KEYS: &[&str] = &[
    "mode",
    "allowUnauthenticated",
    "issuer",
    "publicUrl",
    "audience",
    "jwksUrl",
    "publicKeyFile",
    "algorithms",
    "leeway",
    "scopes",
    "usersFile",
    "roles",
    "provider",
    "stateDir",
    "accessTokenLifetime",
    "refreshTokenLifetime",
    "refreshGrace",
    "rolesClaim",
];
const JWT_ONLY: &[&str] = &["issuer", "audience", "jwksUrl", "publicKeyFile", "algorithms", "leeway"];
const OAUTH_ONLY: &[&str] = &["provider", "stateDir", "accessTokenLifetime", "refreshTokenLifetime", "refreshGrace"];
/// The algorithms a public key verifies (RFC 8725 §3.1: an allow-list; HMAC never, its key
/// would be the public one).
const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];
const MAX_LEEWAY: Duration = Duration::from_secs(300);

pub(super) fn auth(c: &mut Check, node: &Node, path: &str) -> Auth {
    let mut auth = Auth::default();
    let Some(members) = c.object(node, path, KEYS, &[]) else { return auth };
    let text = |c: &mut Check, k: &str| get(members, k).and_then(|n| c.string(n, &join(path, k)));
    let mode = text(c, "mode");
    if let Some(n) = get(members, "allowUnauthenticated") {
        auth.allow_unauthenticated = c.bool(n, &join(path, "allowUnauthenticated")).unwrap_or(false);
    }
    let for_mode = |k: &str| {
        if JWT_ONLY.contains(&k) {
            "is for \"mode\": \"jwt\""
        } else if OAUTH_ONLY.contains(&k) {
            "is for \"mode\": \"oauth\""
        } else {
            "is for \"mode\": \"jwt\" or \"oauth\""
        }
    };
    match mode.as_deref() {
        None | Some("none") => {
            if let Some(k) = KEYS[2..].iter().find(|k| get(members, k).is_some()) {
                c.fail(&join(path, k), node.pos, for_mode(k));
            }
        }
        Some(m @ ("jwt" | "oauth")) => {
            if auth.allow_unauthenticated {
                c.fail(
                    &join(path, "allowUnauthenticated"),
                    node.pos,
                    "is for \"mode\": \"none\" (this mode authenticates)",
                );
            }
            let foreign = if m == "jwt" { OAUTH_ONLY } else { JWT_ONLY };
            for k in foreign.iter().filter(|k| get(members, k).is_some()) {
                c.fail(&join(path, k), node.pos, for_mode(k));
            }
            if m == "jwt" {
                auth.jwt = jwt(c, node, members, path);
            } else {
                auth.oauth = oauth(c, node, members, path);
            }
            auth.users_file =
                text(c, "usersFile").or_else(|| (c.env)("MCP_USERS_PATH").filter(|v| !v.is_empty())).map(Into::into);
            if let Some(n) = get(members, "roles") {
                auth.roles = roles(c, n, &join(path, "roles"));
            }
        }
        Some(other) => {
            c.fail(&join(path, "mode"), node.pos, format!("must be \"none\", \"jwt\" or \"oauth\", not {other:?}"))
        }
    }
    auth
}

/// The `oauth` mode: the gateway as authorization server in front of an OpenID provider. The
/// provider's fields fall back to the Auth0 proxy's environment (`MCP_AUTH_PROVIDER=auth0`,
/// `AUTH0_DOMAIN`, `AUTH0_CLIENT_ID`, `AUTH0_CLIENT_SECRET`, `AUTH0_AUDIENCE`) or the generic
/// OpenID one (`OIDC_ISSUER_URL`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`).
fn oauth(c: &mut Check, node: &Node, members: Members<'_>, path: &str) -> Option<crate::authz::Settings> {
    let before = c.seen();
    let public_url = public_url(c, node, members, path);
    // Its cookies and tokens need TLS (OAuth 2.1 §1.5), but on loopback (development).
    if let Some(u) = public_url.as_deref().and_then(|u| u.parse::<http::Uri>().ok())
        && u.scheme_str() == Some("http")
        && !matches!(u.host(), Some("127.0.0.1" | "localhost" | "[::1]"))
    {
        let at = get(members, "publicUrl").map_or(node.pos, |n| n.pos);
        c.fail(&join(path, "publicUrl"), at, "must be https in \"oauth\" mode (plain http only on loopback)");
    }
    let env = |c: &Check, k: &str| (c.env)(k).filter(|v| !v.is_empty());
    let ppath = join(path, "provider");
    let provider_node = get(members, "provider");
    let pm = match provider_node {
        Some(n) => {
            c.object(n, &ppath, &["issuer", "clientId", "clientSecret", "scopes", "audience", "trustEmail"], &[])
        }
        None => None,
    };
    let pos = provider_node.map_or(node.pos, |n| n.pos);
    let ptext = |c: &mut Check, k: &str| pm.and_then(|m| get(m, k)).and_then(|n| c.string(n, &join(&ppath, k)));
    let auth0 = match env(c, "MCP_AUTH_PROVIDER").as_deref() {
        Some("auth0") => true,
        Some("oidc") => false,
        Some(other) => {
            c.fail(&ppath, pos, format!("MCP_AUTH_PROVIDER is {other:?}: it must be \"auth0\" or \"oidc\""));
            false
        }
        None => env(c, "OIDC_ISSUER_URL").is_none() && env(c, "AUTH0_DOMAIN").is_some(),
    };
    let from_env = |c: &Check, auth0_name: &str, oidc_name: &str| env(c, if auth0 { auth0_name } else { oidc_name });
    let issuer = ptext(c, "issuer")
        .or_else(|| if auth0 { env(c, "AUTH0_DOMAIN").map(|d| auth0_issuer(&d)) } else { env(c, "OIDC_ISSUER_URL") });
    match &issuer {
        None => c.fail(
            &join(&ppath, "issuer"),
            pos,
            "is required (or OIDC_ISSUER_URL, or AUTH0_DOMAIN): the identity provider users sign in at",
        ),
        Some(i) => {
            if let Err(e) = crate::url::parse(i) {
                c.fail(&join(&ppath, "issuer"), pos, e);
            }
        }
    }
    let client_id = ptext(c, "clientId").or_else(|| from_env(c, "AUTH0_CLIENT_ID", "OIDC_CLIENT_ID"));
    if client_id.is_none() {
        c.fail(
            &join(&ppath, "clientId"),
            pos,
            "is required (or OIDC_CLIENT_ID, or AUTH0_CLIENT_ID): the gateway's client at the provider",
        );
    }
    let client_secret =
        ptext(c, "clientSecret").or_else(|| from_env(c, "AUTH0_CLIENT_SECRET", "OIDC_CLIENT_SECRET")).map(Secret);
    let provider_scopes = match pm.and_then(|m| get(m, "scopes")) {
        Some(n) => c.strings(n, &join(&ppath, "scopes")),
        None => vec!["openid".into(), "email".into(), "profile".into()],
    };
    let audience = ptext(c, "audience").or_else(|| if auth0 { env(c, "AUTH0_AUDIENCE") } else { None });
    let trust_email = match pm.and_then(|m| get(m, "trustEmail")) {
        Some(n) => c.bool(n, &join(&ppath, "trustEmail")).unwrap_or(false),
        None => false,
    };
    let state_dir = get(members, "stateDir")
        .and_then(|n| c.string(n, &join(path, "stateDir")))
        .or_else(|| env(c, "MCPGATE_STATE_DIR"))
        .map(std::path::PathBuf::from)
        .or_else(|| env(c, "XDG_STATE_HOME").map(|d| std::path::Path::new(&d).join("mcpgate")))
        .or_else(|| env(c, "HOME").map(|h| std::path::Path::new(&h).join(".local/state/mcpgate")));
    if state_dir.is_none() {
        c.fail(&join(path, "stateDir"), node.pos, "is required here (no MCPGATE_STATE_DIR, XDG_STATE_HOME or HOME)");
    }
    let duration = |c: &mut Check, k: &str, default: Duration, min: Duration, max: Duration| match get(members, k) {
        None => default,
        Some(n) => match c.duration(n, &join(path, k)) {
            Some(d) if (min..=max).contains(&d) => d,
            Some(_) => {
                let show = |d: Duration| format!("{}s", d.as_secs());
                c.fail(&join(path, k), n.pos, format!("must be between {} and {}", show(min), show(max)));
                default
            }
            None => default,
        },
    };
    let minute = Duration::from_secs(60);
    let day = Duration::from_secs(86400);
    let access_ttl = duration(c, "accessTokenLifetime", 15 * minute, minute, day);
    let refresh_ttl = duration(c, "refreshTokenLifetime", 30 * day, Duration::from_secs(3600), 365 * day);
    let refresh_grace = duration(c, "refreshGrace", Duration::from_secs(30), Duration::ZERO, 5 * minute);
    let scopes = get(members, "scopes").map(|n| c.strings(n, &join(path, "scopes"))).unwrap_or_default();
    let roles_claim = roles_claim(c, members, path);
    if c.seen() != before {
        return None;
    }
    Some(crate::authz::Settings {
        public_url: public_url?,
        provider: crate::authz::Provider {
            issuer: issuer?,
            client_id: client_id?,
            client_secret,
            scopes: provider_scopes,
            audience,
            trust_email,
        },
        state_dir: state_dir?,
        access_ttl,
        refresh_ttl,
        refresh_grace,
        scopes,
        roles_claim,
    })
}

/// `mcpgate.audit`: `{"file": "/var/log/mcpgate/audit.jsonl"}` (or `"-"`: stdout), and
/// `"arguments": true` to write argument values too.
pub(super) fn audit(c: &mut Check, node: &Node, path: &str) -> Option<crate::policy::audit::Settings> {
    let members = c.object(node, path, &["file", "arguments"], &[])?;
    let mut settings = crate::policy::audit::Settings { file: None, arguments: false };
    for (k, _, v) in members {
        let p = join(path, k);
        match k.as_str() {
            "file" => match c.string(v, &p) {
                Some(f) if f.is_empty() => c.fail(&p, v.pos, "must name a file, or \"-\" for stdout"),
                Some(f) if f == "-" => {}
                Some(f) => settings.file = Some(f.into()),
                None => {}
            },
            "arguments" => settings.arguments = c.bool(v, &p).unwrap_or(false),
            _ => {}
        }
    }
    Some(settings)
}

/// `{"dev": {"github": ["get_*"], "git*": {"tools": ["get_*"], "prompts": ["*"], "resources": ["repo://*"]}}}`:
/// per role, per server (a glob on server names), the tool globs, or the tool, prompt and resource globs.
fn roles(c: &mut Check, node: &Node, path: &str) -> crate::policy::Roles {
    let mut roles = Vec::new();
    let Value::Object(members) = &node.value else {
        c.fail(path, node.pos, format!("must be an object of roles, not {}", node.kind()));
        return roles;
    };
    for (role, _, servers) in members {
        let role_path = join(path, role);
        let Value::Object(servers) = &servers.value else {
            c.fail(&role_path, servers.pos, "must be an object: server (a glob) → what it grants");
            continue;
        };
        let mut grants = Vec::new();
        for (server, _, what) in servers {
            let p = join(&role_path, server);
            let mut grant = crate::policy::Grant { server: server.clone(), ..Default::default() };
            match &what.value {
                Value::Array(_) => grant.tools = c.strings(what, &p),
                Value::Object(_) => {
                    if let Some(kinds) = c.object(what, &p, &["tools", "prompts", "resources"], &[]) {
                        for (k, _, v) in kinds {
                            let list = c.strings(v, &join(&p, k));
                            match k.as_str() {
                                "tools" => grant.tools = list,
                                "prompts" => grant.prompts = list,
                                _ => grant.resources = list,
                            }
                        }
                    }
                }
                _ => c.fail(
                    &p,
                    what.pos,
                    "must be an array of tool globs, or {\"tools\": [...], \"prompts\": [...], \"resources\": [...]}",
                ),
            }
            grants.push(grant);
        }
        roles.push((role.clone(), grants));
    }
    roles
}

/// The issuer of an Auth0 tenant from `AUTH0_DOMAIN` (`acme.us.auth0.com`, with or without its
/// scheme): Auth0's issuers end with a slash.
fn auth0_issuer(domain: &str) -> String {
    format!("https://{}/", domain.trim_start_matches("https://").trim_end_matches('/'))
}

/// `rolesClaim`: the claim naming the caller's roles (its name exactly: Auth0's namespaced claims
/// hold dots and slashes).
fn roles_claim(c: &mut Check, members: Members<'_>, path: &str) -> Option<String> {
    let n = get(members, "rolesClaim")?;
    let p = join(path, "rolesClaim");
    match c.string(n, &p) {
        Some(name) if name.is_empty() => {
            c.fail(&p, n.pos, "must name a claim (such as \"groups\" or \"roles\")");
            None
        }
        other => other,
    }
}

/// `publicUrl` (or `MCP_BASE_URL`): the gateway's public origin, which tokens name.
fn public_url(c: &mut Check, node: &Node, members: Members<'_>, path: &str) -> Option<String> {
    let at = |k: &str| get(members, k).map_or(node.pos, |n| n.pos);
    let text = |c: &mut Check, k: &str| get(members, k).and_then(|n| c.string(n, &join(path, k)));
    let env = |c: &Check, k: &str| (c.env)(k).filter(|v| !v.is_empty());
    let public_url =
        text(c, "publicUrl").or_else(|| env(c, "MCP_BASE_URL")).map(|u| u.trim_end_matches('/').to_owned());
    match &public_url {
        None => c.fail(
            &join(path, "publicUrl"),
            node.pos,
            "is required (or MCP_BASE_URL): the gateway's public origin, such as https://mcp.example.com, which \
             clients and tokens name as the resource",
        ),
        Some(u) => match crate::url::parse(u) {
            Err(e) => c.fail(&join(path, "publicUrl"), at("publicUrl"), e),
            Ok(uri) if !matches!(uri.path(), "" | "/") || uri.query().is_some() => c.fail(
                &join(path, "publicUrl"),
                at("publicUrl"),
                "must be an origin (scheme, host, port), with no path",
            ),
            Ok(_) => {}
        },
    }
    public_url
}

fn jwt(c: &mut Check, node: &Node, members: Members<'_>, path: &str) -> Option<Settings> {
    let before = c.seen();
    let at = |k: &str| get(members, k).map_or(node.pos, |n| n.pos);
    let text = |c: &mut Check, k: &str| get(members, k).and_then(|n| c.string(n, &join(path, k)));
    let env = |c: &Check, k: &str| (c.env)(k).filter(|v| !v.is_empty());

    let issuer = text(c, "issuer")
        .or_else(|| env(c, "OIDC_ISSUER_URL"))
        .or_else(|| env(c, "AUTH0_DOMAIN").map(|d| auth0_issuer(&d)));
    match &issuer {
        None => c.fail(&join(path, "issuer"), node.pos, "is required (or OIDC_ISSUER_URL, or AUTH0_DOMAIN)"),
        Some(i) => {
            if let Err(e) = crate::url::parse(i) {
                c.fail(&join(path, "issuer"), at("issuer"), e);
            }
        }
    }
    let public_url = public_url(c, node, members, path);
    let audiences = match get(members, "audience") {
        Some(n) if matches!(n.value, Value::Array(_)) => c.strings(n, &join(path, "audience")),
        Some(n) => c.string(n, &join(path, "audience")).into_iter().collect(),
        None => env(c, "AUTH0_AUDIENCE").into_iter().collect(),
    };
    if get(members, "audience").is_some() && audiences.iter().all(String::is_empty) {
        c.fail(&join(path, "audience"), at("audience"), "must name at least one audience");
    }
    let keys = match (text(c, "jwksUrl"), text(c, "publicKeyFile")) {
        (Some(_), Some(_)) => {
            c.fail(&join(path, "publicKeyFile"), at("publicKeyFile"), "conflicts with jwksUrl: one source of keys");
            None
        }
        (Some(url), None) => match crate::url::parse(&url) {
            Ok(_) => Some(Keys::Url(url)),
            Err(e) => {
                c.fail(&join(path, "jwksUrl"), at("jwksUrl"), e);
                None
            }
        },
        (None, Some(file)) => {
            let loaded = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {file}: {e}"))
                .and_then(|text| crate::authn::keys::KeySet::from_file_text(&text).map(|set| (text, set)));
            match loaded {
                Ok((text, set)) => Some(Keys::Static(StaticKeys { text, set: set.into() })),
                Err(e) => {
                    c.fail(&join(path, "publicKeyFile"), at("publicKeyFile"), e);
                    None
                }
            }
        }
        (None, None) => Some(Keys::Discover),
    };
    let algorithms = match get(members, "algorithms") {
        None => crate::authn::DEFAULT_ALGORITHMS.to_vec(),
        Some(n) => {
            let p = join(path, "algorithms");
            let mut algs = Vec::new();
            for name in c.strings(n, &p) {
                match ALGORITHMS.iter().find(|(a, _)| *a == name) {
                    Some((_, alg)) => algs.push(*alg),
                    None => {
                        let known: Vec<&str> = ALGORITHMS.iter().map(|(a, _)| *a).collect();
                        c.fail(
                            &p,
                            n.pos,
                            format!("{name:?} is not accepted (HMAC and none never are); one of {}", known.join(", ")),
                        )
                    }
                }
            }
            if algs.is_empty() {
                c.fail(&p, n.pos, "must name at least one algorithm");
            }
            algs
        }
    };
    let leeway = match get(members, "leeway") {
        None => Duration::from_secs(60),
        Some(n) => match c.duration(n, &join(path, "leeway")) {
            Some(d) if d <= MAX_LEEWAY => d,
            Some(_) => {
                c.fail(&join(path, "leeway"), n.pos, "must be at most 5m (clock skew, not a grace period)");
                MAX_LEEWAY
            }
            None => MAX_LEEWAY,
        },
    };
    let scopes = get(members, "scopes").map(|n| c.strings(n, &join(path, "scopes"))).unwrap_or_default();
    if c.seen() != before {
        return None;
    }
    let (issuer, public_url, keys) = (issuer?, public_url?, keys?);
    let audiences = if audiences.is_empty() { vec![public_url.clone()] } else { audiences };
    let roles_claim = roles_claim(c, members, path);
    Some(Settings { issuer, public_url, audiences, keys, algorithms, leeway, scopes, roles_claim })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Problem};

    fn parse(auth: serde_json::Value, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let servers = serde_json::json!({"s": {"url": "https://mcp.example/mcp"}});
        let text = serde_json::json!({"mcpgate": {"auth": auth}, "mcpServers": servers}).to_string();
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        crate::config::parse(&text, &lookup).map_err(|p| p.iter().map(Problem::to_string).collect())
    }

    #[test]
    fn the_jwt_mode_is_checked_whole_with_every_problem_at_its_path() {
        let p = parse(
            serde_json::json!({"mode": "jwt", "algorithms": ["HS256", "none"], "leeway": "1h",
            "jwksUrl": "https://idp/jwks", "publicKeyFile": "/nonexistent", "publicUrl": "https://gw.example/mcp"}),
            &[],
        )
        .unwrap_err();
        let has = |path: &str, words: &str| p.iter().any(|x| x.contains(path) && x.contains(words));
        assert!(has("mcpgate.auth.issuer", "required"), "{p:#?}");
        assert!(has("mcpgate.auth.publicUrl", "origin"), "{p:#?}");
        assert!(has("mcpgate.auth.algorithms", "\"HS256\" is not accepted"), "{p:#?}");
        assert!(has("mcpgate.auth.algorithms", "\"none\" is not accepted"), "{p:#?}");
        assert!(has("mcpgate.auth.leeway", "at most 5m"), "{p:#?}");
        assert!(has("mcpgate.auth.publicKeyFile", "conflicts with jwksUrl"), "{p:#?}");
        let p = parse(serde_json::json!({"mode": "none", "issuer": "https://idp/"}), &[]).unwrap_err();
        assert!(p.iter().any(|x| x.contains("mcpgate.auth.issuer") && x.contains("\"jwt\"")), "{p:#?}");
        let p = parse(
            serde_json::json!({"mode": "jwt", "issuer": "https://idp/", "publicUrl": "https://gw",
            "publicKeyFile": "/nonexistent/key.pem"}),
            &[],
        )
        .unwrap_err();
        assert!(p.iter().any(|x| x.contains("mcpgate.auth.publicKeyFile") && x.contains("cannot read")), "{p:#?}");
    }

    #[test]
    fn unset_fields_come_from_the_auth0_and_openid_proxies_environment() {
        let auth0 = [
            ("AUTH0_DOMAIN", "acme.us.auth0.com"),
            ("MCP_BASE_URL", "https://gw.example/"),
            ("AUTH0_AUDIENCE", "https://api"),
        ];
        let cfg = parse(serde_json::json!({"mode": "jwt"}), &auth0).unwrap();
        let s = cfg.gateway.auth.jwt.unwrap();
        assert_eq!(s.issuer, "https://acme.us.auth0.com/");
        assert_eq!(s.public_url, "https://gw.example");
        assert_eq!(s.audiences, vec!["https://api".to_owned()]);
        let oidc = [("OIDC_ISSUER_URL", "https://login.example/realms/a"), ("MCP_BASE_URL", "https://gw.example")];
        let s = parse(serde_json::json!({"mode": "jwt"}), &oidc).unwrap().gateway.auth.jwt.unwrap();
        assert_eq!(
            (s.issuer.as_str(), s.audiences.clone()),
            ("https://login.example/realms/a", vec!["https://gw.example".to_owned()])
        );
        // The file wins over the environment.
        let s = parse(serde_json::json!({"mode": "jwt", "issuer": "https://file/"}), &oidc)
            .unwrap()
            .gateway
            .auth
            .jwt
            .unwrap();
        assert_eq!(s.issuer, "https://file/");
        assert_eq!(s.leeway, std::time::Duration::from_secs(60));
    }

    #[test]
    fn the_oauth_mode_is_checked_whole_with_every_problem_at_its_path() {
        let p = parse(
            serde_json::json!({"mode": "oauth", "issuer": "https://idp/", "refreshGrace": "10m",
            "accessTokenLifetime": "5s", "provider": {"clientSecret": "s", "colour": "blue"}}),
            &[("HOME", "/home/u")],
        )
        .unwrap_err();
        let has = |path: &str, words: &str| p.iter().any(|x| x.contains(path) && x.contains(words));
        assert!(has("mcpgate.auth.issuer", "is for \"mode\": \"jwt\""), "{p:#?}");
        assert!(has("mcpgate.auth.publicUrl", "required"), "{p:#?}");
        assert!(has("mcpgate.auth.provider.issuer", "required"), "{p:#?}");
        assert!(has("mcpgate.auth.provider.clientId", "required"), "{p:#?}");
        assert!(has("mcpgate.auth.provider.colour", ""), "{p:#?}");
        assert!(has("mcpgate.auth.refreshGrace", "between"), "{p:#?}");
        assert!(has("mcpgate.auth.accessTokenLifetime", "between"), "{p:#?}");
        // No secret in any message.
        assert!(!p.iter().any(|x| x.contains("\"s\"")), "{p:#?}");
        let plain = serde_json::json!({"mode": "oauth", "publicUrl": "http://gw.example",
            "provider": {"issuer": "https://idp.example", "clientId": "gw"}});
        let p = parse(plain, &[("HOME", "/h")]).unwrap_err();
        assert!(p.iter().any(|x| x.contains("mcpgate.auth.publicUrl") && x.contains("https")), "{p:#?}");
        let loopback = serde_json::json!({"mode": "oauth", "publicUrl": "http://127.0.0.1:8090",
            "provider": {"issuer": "https://idp.example", "clientId": "gw"}});
        assert!(parse(loopback, &[("HOME", "/h")]).is_ok(), "plain http on loopback (development)");
        let p = parse(serde_json::json!({"mode": "jwt", "provider": {}}), &[]).unwrap_err();
        assert!(p.iter().any(|x| x.contains("mcpgate.auth.provider") && x.contains("\"oauth\"")), "{p:#?}");
    }

    #[test]
    fn the_oauth_mode_takes_the_auth0_proxys_environment_unchanged() {
        let auth0 = [
            ("MCP_AUTH_PROVIDER", "auth0"),
            ("AUTH0_DOMAIN", "https://acme.us.auth0.com/"),
            ("AUTH0_CLIENT_ID", "abc"),
            ("AUTH0_CLIENT_SECRET", "shh"),
            ("AUTH0_AUDIENCE", "https://api.acme"),
            ("MCP_BASE_URL", "https://mcp.acme.com/"),
            ("MCP_USERS_PATH", "/etc/mcpgate/users.json"),
            ("HOME", "/home/u"),
        ];
        let cfg = parse(serde_json::json!({"mode": "oauth"}), &auth0).unwrap();
        let a = &cfg.gateway.auth;
        let s = a.oauth.as_ref().unwrap();
        assert_eq!(s.public_url, "https://mcp.acme.com");
        assert_eq!(s.provider.issuer, "https://acme.us.auth0.com/");
        assert_eq!(s.provider.client_id, "abc");
        assert_eq!(s.provider.client_secret.as_ref().unwrap().0, "shh");
        assert_eq!(s.provider.audience.as_deref(), Some("https://api.acme"));
        assert_eq!(s.state_dir, std::path::PathBuf::from("/home/u/.local/state/mcpgate"));
        assert_eq!(a.users_file.as_deref(), Some(std::path::Path::new("/etc/mcpgate/users.json")));
        assert_eq!(s.access_ttl, std::time::Duration::from_secs(900));
        // The generic OpenID names; the file wins over both.
        let oidc = [
            ("OIDC_ISSUER_URL", "https://login.example/realms/a"),
            ("OIDC_CLIENT_ID", "gw"),
            ("MCP_BASE_URL", "https://gw.example"),
            ("MCPGATE_STATE_DIR", "/var/lib/mcpgate"),
        ];
        let s = parse(serde_json::json!({"mode": "oauth"}), &oidc).unwrap().gateway.auth.oauth.unwrap();
        assert_eq!(
            (s.provider.issuer.as_str(), s.provider.client_id.as_str()),
            ("https://login.example/realms/a", "gw")
        );
        assert!(s.provider.client_secret.is_none() && s.provider.audience.is_none());
        assert_eq!(s.state_dir, std::path::PathBuf::from("/var/lib/mcpgate"));
        let file = serde_json::json!({"mode": "oauth", "provider": {"issuer": "https://file/", "clientId": "f"}});
        let s = parse(file, &oidc).unwrap().gateway.auth.oauth.unwrap();
        assert_eq!((s.provider.issuer.as_str(), s.provider.client_id.as_str()), ("https://file/", "f"));
        let p =
            parse(serde_json::json!({"mode": "oauth"}), &[("MCP_AUTH_PROVIDER", "okta"), ("HOME", "/h")]).unwrap_err();
        assert!(p.iter().any(|x| x.contains("MCP_AUTH_PROVIDER") && x.contains("auth0")), "{p:#?}");
    }
}
