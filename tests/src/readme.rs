//! The README's shell blocks, each with the `<!-- readme-test: KIND -->` marker that precedes
//! it, so tests can run the documented commands as written.

/// One fenced `sh` block of the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The marker's kind (`tested`, `simulator`, `needs a cluster`, …), `None` without one.
    pub kind: Option<String>,
    /// The `## ` section it is in.
    pub section: String,
    pub text: String,
}

/// Every ```` ```sh ```` block of `markdown`, in order.
pub fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut kind: Option<String> = None;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_owned();
            kind = None;
        } else if let Some(rest) = line.trim().strip_prefix("<!-- readme-test:") {
            kind = Some(rest.trim_end_matches("-->").trim().to_owned());
        } else if line.trim() == "```sh" {
            let mut text = String::new();
            for l in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            out.push(Block {
                kind: kind.take(),
                section: section.clone(),
                text,
            });
        } else if !line.trim().is_empty() {
            // A marker belongs to the block right after it (blank lines aside).
            kind = None;
        }
    }
    out
}

/// The README of the repository.
pub fn readme() -> String {
    std::fs::read_to_string(crate::repo_root().join("README.md")).expect("README.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_the_marker_right_before_them() {
        let md = "## A\n<!-- readme-test: tested -->\n```sh\necho 1\n```\ntext\n```sh\necho 2\n```\n\
                  <!-- readme-test: needs a cluster -->\n\nprose\n```sh\necho 3\n```\n";
        let b = sh_blocks(md);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].kind.as_deref(), Some("tested"));
        assert_eq!(b[0].text, "echo 1\n");
        assert_eq!(b[0].section, "A");
        assert_eq!(b[1].kind, None);
        assert_eq!(
            b[2].kind, None,
            "prose between marker and block drops the marker"
        );
    }
}
