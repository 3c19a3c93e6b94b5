//! Name patterns: `*` for any run of characters (none included), `?` for one; everything else
//! as written. Tool, prompt and server names are short, so the plain backtracking match is
//! bounded: at most one backtrack point (the last `*`) is kept.

pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` it began matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // The last `*` takes one more character.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        let table = [
            ("*", "anything", true),
            ("*", "", true),
            ("github__*", "github__create_issue", true),
            ("github__*", "gitlab__create_issue", false),
            ("*_issue", "github__create_issue", true),
            ("get_?", "get_a", true),
            ("get_?", "get_ab", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("", "x", false),
            ("**", "x", true),
        ];
        for (p, n, want) in table {
            assert_eq!(matches(p, n), want, "{p:?} vs {n:?}");
        }
    }
}
