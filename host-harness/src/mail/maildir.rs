//! Reading delivered mail back: the `.eml` files of the file transport or a Maildir
//! written by an SMTP sink. Used by the demo and the tests.

use std::path::{Path, PathBuf};

use mail_parser::MessageParser;

/// A parsed message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// File it came from.
    pub path: PathBuf,
    /// `To` header as written.
    pub to: String,
    /// Decoded subject.
    pub subject: String,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
    /// Decoded text part, if any.
    pub text: Option<String>,
    /// Decoded HTML part, if any.
    pub html: Option<String>,
    /// The raw `Content-Type` of the top level.
    pub content_type: String,
}

impl ReceivedMail {
    /// The first link into a flow (`…/if/flow/…`) in the text part, else the HTML part.
    pub fn link(&self) -> Option<String> {
        let find = |s: &str| {
            s.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
                .find(|w| w.contains("/if/flow/") && w.starts_with("http"))
                .map(|w| w.replace("&amp;", "&").replace("&#x2f;", "/"))
        };
        self.text.as_deref().and_then(find).or_else(|| {
            self.html
                .as_deref()
                .map(|h| h.replace("&#x2f;", "/"))
                .and_then(|h| find(&h))
        })
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_none_or(|x| x != "json") {
            out.push(p);
        }
    }
}

/// Parses one message.
pub fn parse(path: &Path, raw: &[u8]) -> Option<ReceivedMail> {
    let m = MessageParser::default().parse(raw)?;
    let to = m
        .header_raw("To")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Some(ReceivedMail {
        path: path.to_path_buf(),
        to,
        subject: m.subject().unwrap_or("").to_string(),
        message_id: m.message_id().unwrap_or("").to_string(),
        text: m
            .body_text(0)
            .map(|t| t.into_owned())
            .filter(|_| m.text_body_count() > 0),
        html: m
            .body_html(0)
            .map(|t| t.into_owned())
            .filter(|_| m.html_body_count() > 0),
        content_type: m
            .header_raw("Content-Type")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    })
}

/// Every message under `dir` (recursively), oldest file first.
pub fn read_all(dir: &Path) -> Vec<ReceivedMail> {
    let mut paths = Vec::new();
    files(dir, &mut paths);
    // Each file's time is read once: a sink may write or move files while this
    // sorts, and a key that changes between comparisons makes the sort panic.
    paths.sort_by_cached_key(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    });
    paths
        .iter()
        .filter_map(|p| parse(p, &std::fs::read(p).ok()?))
        .collect()
}
