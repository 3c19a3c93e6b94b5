//! Who may see and call what: the users file (the seed gateway's shape, unchanged —
//! `{"user@example.com": {"name": "…", "roles": ["admin"], "allowed_tools": ["*"]}}`) and the
//! roles of the configuration (`mcpgate.auth.roles`: per server, globs on its own tool and
//! prompt names). Once a users file is configured, a user it does not name is refused, and a
//! user sees and calls only what is granted: `allowed_tools` (and `allowed_prompts`) are globs
//! on the names the merged endpoint `/mcp` shows; a role's grants are globs on a server's own
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
}

/// The roles of the configuration: each name with its grants.
pub type Roles = Vec<(String, Vec<Grant>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Tool,
    Prompt,
}

/// One user's rights.
#[derive(Debug, Default)]
struct Rights {
    /// Globs on the merged endpoint's names.
    tools: Vec<String>,
    prompts: Vec<String>,
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
        let by_name = match what {
            What::Tool => &r.tools,
            What::Prompt => &r.prompts,
        };
        by_name.iter().any(|p| glob::matches(p, merged))
            || r.grants.iter().any(|g| {
                let names = if what == What::Tool { &g.tools } else { &g.prompts };
                glob::matches(&g.server, server) && names.iter().any(|p| glob::matches(p, own))
            })
    }

    /// Whether everything is allowed (no users file): nothing to filter.
    pub fn is_everything(&self) -> bool {
        self.0.is_none()
    }
}
