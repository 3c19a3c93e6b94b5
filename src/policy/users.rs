//! The users file: read whole, checked (every problem with its user and key), kept while a
//! broken replacement is refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::{Access, Rights, Roles};
use crate::authn::Caller;

/// A users file larger than this is refused (a million users is a directory, not a file).
const MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
struct User {
    roles: Vec<String>,
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: Vec<String>,
}

/// The users file and the configuration's roles.
#[derive(Debug)]
pub struct Policy {
    /// By the key the file gives (an email, lower-cased, or a subject).
    users: HashMap<String, User>,
    roles: Roles,
}

impl Policy {
    pub fn load(path: &Path, roles: Roles) -> Result<Policy, String> {
        let shown = path.display();
        let size = std::fs::metadata(path).map_err(|e| format!("users file {shown}: {e}"))?.len();
        if size > MAX_FILE {
            return Err(format!("users file {shown}: larger than {MAX_FILE} bytes"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("users file {shown}: {e}"))?;
        Policy::parse(&text, roles).map_err(|e| format!("users file {shown}: {e}"))
    }

    pub fn parse(text: &str, roles: Roles) -> Result<Policy, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(entries) = doc else { return Err("must be an object of users".into()) };
        let mut users = HashMap::with_capacity(entries.len());
        let mut problems = Vec::new();
        for (key, entry) in entries {
            let Value::Object(fields) = entry else {
                problems.push(format!("{key:?}: must be an object"));
                continue;
            };
            let mut list = |field: &str| -> Vec<String> {
                match fields.get(field) {
                    None => Vec::new(),
                    Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                        items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
                    }
                    Some(_) => {
                        problems.push(format!("{key:?}.{field}: must be an array of strings"));
                        Vec::new()
                    }
                }
            };
            let user = User {
                roles: list("roles"),
                tools: list("allowed_tools"),
                prompts: list("allowed_prompts"),
                resources: list("allowed_resources"),
            };
            users.insert(normalize(&key), user);
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Policy { users, roles })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// What `caller` may use, found by their email, else their subject; their roles are the
    /// file's and the token's (`rolesClaim`). Someone the file does not name is let in only by a
    /// role of the configuration their token names. `Err` names who is not a user.
    pub fn access(&self, caller: &Caller) -> Result<Access, String> {
        let user = caller
            .email
            .as_deref()
            .and_then(|e| self.users.get(&normalize(e)))
            .or_else(|| caller.subject.as_deref().and_then(|s| self.users.get(&normalize(s))));
        let known_role = |r: &String| self.roles.iter().any(|(name, _)| name == r);
        if user.is_none() && !caller.roles.iter().any(known_role) {
            let who = caller.email.as_deref().or(caller.subject.as_deref()).unwrap_or("-");
            return Err(format!("{who} is not a user of this gateway"));
        }
        let own: &[String] = user.map_or(&[], |u| &u.roles);
        let grants = own
            .iter()
            .chain(&caller.roles)
            .flat_map(|r| self.roles.iter().filter(move |(name, _)| name == r).flat_map(|(_, g)| g.iter().cloned()))
            .collect();
        let listed = |f: fn(&User) -> &Vec<String>| user.map(f).cloned().unwrap_or_default();
        let rights = Rights {
            tools: listed(|u| &u.tools),
            prompts: listed(|u| &u.prompts),
            resources: listed(|u| &u.resources),
            grants,
        };
        Ok(Access(Some(Arc::new(rights))))
    }
}

/// Emails compare without case (their domains do; users write them either way); subjects as
/// they are.
fn normalize(key: &str) -> String {
    if key.contains('@') { key.to_ascii_lowercase() } else { key.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::super::{Grant, What};
    use super::*;

    #[test]
    fn the_seed_users_file_and_roles_grant_what_they_say() {
        let seed = r#"{"Alice@Example.com": {"name": "Alice", "roles": ["admin"], "allowed_tools": ["*"]},
                       "bob@example.com": {"name": "Bob", "roles": ["dev"], "allowed_tools": ["time__*"]},
                       "svc-42": {"roles": ["dev"]}}"#;
        let grant = Grant {
            server: "git*".into(),
            tools: vec!["get_*".into()],
            prompts: vec!["*".into()],
            resources: vec!["repo://*".into()],
        };
        let roles = vec![("dev".to_owned(), vec![grant])];
        let p = Policy::parse(seed, roles).unwrap();
        let caller = |email: Option<&str>, sub: &str| Caller {
            subject: Some(sub.into()),
            email: email.map(str::to_owned),
            ..Caller::default()
        };
        let alice = p.access(&caller(Some("alice@example.COM"), "auth0|1")).unwrap();
        assert!(alice.allows(What::Tool, "github", "delete_repo", "github__delete_repo"));
        assert!(!alice.allows(What::Prompt, "github", "review", "github__review"), "prompts only when granted");
        let bob = p.access(&caller(Some("bob@example.com"), "auth0|2")).unwrap();
        assert!(bob.allows(What::Tool, "time", "now", "time__now"));
        assert!(bob.allows(What::Tool, "github", "get_issue", "github__get_issue"), "by his role");
        assert!(!bob.allows(What::Tool, "github", "delete_repo", "github__delete_repo"));
        assert!(bob.allows(What::Prompt, "gitlab", "review", "gitlab__review"));
        assert!(!bob.allows(What::Prompt, "memory", "review", "memory__review"));
        assert!(bob.allows(What::Resource, "github", "repo://a/b", "mcpgate://github/repo://a/b"));
        assert!(!bob.allows(What::Resource, "github", "file:///etc/passwd", "mcpgate://github/file:///etc/passwd"));
        assert!(!alice.allows(What::Resource, "github", "repo://a/b", "mcpgate://github/repo://a/b"), "none granted");
        let svc = p.access(&caller(None, "svc-42")).unwrap();
        assert!(svc.allows(What::Tool, "github", "get_issue", "github__get_issue"), "found by subject");
        let err = p.access(&caller(Some("eve@example.com"), "auth0|3")).unwrap_err();
        assert!(err.contains("eve@example.com"), "{err}");
        // Roles from the token (`rolesClaim`): added to the file's; a user the file does not name
        // gets in only by a configured role, and gets only what it grants.
        let with_roles = |email: &str, roles: &[&str]| Caller {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..caller(Some(email), "x")
        };
        let eve = p.access(&with_roles("eve@example.com", &["dev"])).unwrap();
        assert!(eve.allows(What::Tool, "github", "get_issue", "github__get_issue"));
        assert!(!eve.allows(What::Tool, "time", "now", "time__now"));
        assert!(
            p.access(&with_roles("eve@example.com", &["nobody", "admin"])).is_err(),
            "roles the configuration lacks"
        );
        let alice = p.access(&with_roles("alice@example.com", &["dev"])).unwrap();
        assert!(alice.allows(What::Prompt, "gitlab", "review", "gitlab__review"), "the token's role added");
        assert!(
            Policy::parse(r#"{"x": {"allowed_tools": "*"}}"#, Vec::new()).unwrap_err().contains("\"x\".allowed_tools")
        );
        assert!(Policy::parse("[]", Vec::new()).is_err());
    }
}
