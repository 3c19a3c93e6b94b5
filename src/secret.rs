//! A secret from the configuration (a client secret, the admin token): compared, never printed.
//! Its own module: the configuration and what it configures both name it.

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
