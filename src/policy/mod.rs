//! Who may see and call what: the users file (the seed gateway's shape, unchanged —
//! `{"user@example.com": {"name": "…", "roles": ["admin"], "allowed_tools": ["*"]}}`) and the
//! roles of the configuration (`mcpgate.auth.roles`: per server, globs on its own tool and
//! prompt names and resource URIs). Once a users file is configured, a user it does not name is refused, and a
//! user sees and calls only what is granted: `allowed_tools` (and `allowed_prompts`,
//! `allowed_resources`) are globs on the names (URIs) the merged endpoint `/mcp` shows; a role's grants are globs on a server's own
//! names. The one rule (`Access::allows`) is asked where listings are made and where calls are
//! dispatched, for every endpoint and era.

pub mod audit;
pub mod glob;
mod users;

use std::sync::Arc;

pub use users::Policy;

/// What a role grants on the servers whose names match `server` (a glob).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub server: String,
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
    /// Globs on the server's own resource URIs (and template strings).
    pub resources: Vec<String>,
}

/// The roles of the configuration: each name with its grants.
pub type Roles = Vec<(String, Vec<Grant>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Tool,
    Prompt,
    /// A resource or a resource template, by its URI.
    Resource,
}

/// One user's rights.
#[derive(Debug, Default)]
struct Rights {
    /// Globs on the merged endpoint's names (a resource's: its URI as `/mcp` shows it).
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: Vec<String>,
    /// From the user's roles.
    grants: Vec<Grant>,
}

/// What a request may see and call: everything (no users file), or a user's rights.
#[derive(Debug, Clone, Default)]
pub struct Access(Option<Arc<Rights>>);

impl Access {
    pub fn everything() -> Access {
        Access(None)
    }

    /// Whether the tool or prompt a server knows as `own` — shown on `/mcp` as `merged` — may be
    /// seen and used.
    pub fn allows(&self, what: What, server: &str, own: &str, merged: &str) -> bool {
        let Some(r) = &self.0 else { return true };
        let pick = |tools, prompts, resources| match what {
            What::Tool => tools,
            What::Prompt => prompts,
            What::Resource => resources,
        };
        let by_name: &Vec<String> = pick(&r.tools, &r.prompts, &r.resources);
        by_name.iter().any(|p| glob::matches(p, merged))
            || r.grants.iter().any(|g| {
                let names: &Vec<String> = pick(&g.tools, &g.prompts, &g.resources);
                glob::matches(&g.server, server) && names.iter().any(|p| glob::matches(p, own))
            })
    }

    /// Whether everything is allowed (no users file): nothing to filter.
    pub fn is_everything(&self) -> bool {
        self.0.is_none()
    }
}
