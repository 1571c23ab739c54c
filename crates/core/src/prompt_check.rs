//! The prompt checker: the operator's banned words and patterns, applied to every
//! Midjourney, Suno and Luma prompt before a task is queued.
//!
//! A word (or phrase) matches whole words of the prompt, whatever their case and the
//! punctuation around them (`Gore,` and `GORE` match `gore`; `gorey` does not). A pattern
//! is a regular expression matched case-insensitively against the whole text. The first
//! match is the answer, named back to the client.

use std::collections::HashSet;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::task::TaskSpec;

/// The checker's settings (`[prompt_check]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptCheckConfig {
    /// Check prompts at all.
    pub enabled: bool,
    /// Banned words and phrases (whole words, any case). Replaces the default list.
    pub words: Vec<String>,
    /// More words and phrases, added to `words` (to extend the default list).
    pub extra_words: Vec<String>,
    /// Banned regular expressions (case-insensitive).
    pub patterns: Vec<String>,
}

impl Default for PromptCheckConfig {
    fn default() -> Self {
        PromptCheckConfig {
            enabled: true,
            words: DEFAULT_WORDS.iter().map(|w| (*w).to_string()).collect(),
            extra_words: Vec::new(),
            patterns: Vec::new(),
        }
    }
}

/// The list that ships: words Midjourney's own filter refuses and that no image, song or
/// video request of an API customer needs.
pub const DEFAULT_WORDS: &[&str] = &[
    "beheaded",
    "behead",
    "bloodbath",
    "child porn",
    "decapitated",
    "disembowel",
    "dismembered",
    "genitals",
    "gore",
    "hentai",
    "naked",
    "nude",
    "nudity",
    "porn",
    "pornographic",
    "sexy",
    "torture",
    "xxx",
];

/// A compiled checker.
#[derive(Debug, Clone)]
pub struct PromptChecker {
    enabled: bool,
    /// Single words, normalised.
    words: HashSet<String>,
    /// Phrases of several words, normalised (` a b `).
    phrases: Vec<(String, String)>,
    patterns: Vec<(String, Regex)>,
}

/// A prompt the checker refused: the field and what matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The input field (`prompt`, `tags`, …).
    pub field: &'static str,
    /// The banned word or phrase, or the pattern, that matched.
    pub matched: String,
}

/// A text's words, lowercased, separated by single spaces and framed by spaces.
fn normalise(text: &str) -> String {
    let mut out = String::from(" ");
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&w.to_lowercase());
        out.push(' ');
    }
    out
}

impl PromptChecker {
    /// Compile the settings; a pattern that is not a valid regular expression is an error
    /// naming it.
    pub fn new(c: &PromptCheckConfig) -> Result<PromptChecker, String> {
        let mut words = HashSet::new();
        let mut phrases = Vec::new();
        for entry in c.words.iter().chain(&c.extra_words) {
            let n = normalise(entry);
            match n.trim().split(' ').count() {
                0 => {}
                1 if !n.trim().is_empty() => {
                    words.insert(n.trim().to_string());
                }
                1 => {}
                _ => phrases.push((entry.trim().to_string(), n)),
            }
        }
        let patterns = c
            .patterns
            .iter()
            .map(|p| {
                RegexBuilder::new(p)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map(|r| (p.clone(), r))
                    .map_err(|e| {
                        format!(
                            "prompt_check.patterns: `{p}` is not a valid regular expression: {e}"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(PromptChecker {
            enabled: c.enabled,
            words,
            phrases,
            patterns,
        })
    }

    /// The first banned word, phrase or pattern in `text`.
    pub fn check_text(&self, text: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let n = normalise(text);
        if let Some(w) = n.split(' ').find(|w| self.words.contains(*w)) {
            return Some(w.to_string());
        }
        if let Some((entry, _)) = self.phrases.iter().find(|(_, p)| n.contains(p.as_str())) {
            return Some(entry.clone());
        }
        self.patterns
            .iter()
            .find(|(_, r)| r.is_match(text))
            .map(|(p, _)| p.clone())
    }

    /// Check every prompt of a task.
    pub fn check(&self, spec: &TaskSpec) -> Result<(), Rejected> {
        for (field, text) in spec.prompts() {
            if let Some(matched) = self.check_text(text) {
                return Err(Rejected { field, matched });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(words: &[&str], patterns: &[&str]) -> PromptChecker {
        PromptChecker::new(&PromptCheckConfig {
            enabled: true,
            words: words.iter().map(|w| (*w).to_string()).collect(),
            extra_words: vec![],
            patterns: patterns.iter().map(|w| (*w).to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn words_match_whole_words_in_any_case() {
        let c = checker(&["gore", "blood bath"], &[r"\bkill\w*"]);
        assert_eq!(c.check_text("a GORE, scene").as_deref(), Some("gore"));
        assert_eq!(c.check_text("gorey fields"), None);
        assert_eq!(
            c.check_text("a Blood  bath!").as_deref(),
            Some("blood bath")
        );
        assert_eq!(c.check_text("blood and a bath"), None);
        assert_eq!(
            c.check_text("Killers at dawn").as_deref(),
            Some(r"\bkill\w*")
        );
        assert_eq!(c.check_text("a red fox --v 6"), None);
    }

    #[test]
    fn a_bad_pattern_is_refused_by_name() {
        let e = PromptChecker::new(&PromptCheckConfig {
            patterns: vec!["(unclosed".into()],
            ..PromptCheckConfig::default()
        })
        .unwrap_err();
        assert!(e.contains("(unclosed"), "{e}");
    }

    #[test]
    fn the_default_list_is_on_and_can_be_extended_or_turned_off() {
        let c = PromptChecker::new(&PromptCheckConfig::default()).unwrap();
        assert_eq!(c.check_text("a nude statue").as_deref(), Some("nude"));
        let more = PromptChecker::new(&PromptCheckConfig {
            extra_words: vec!["zebra".into()],
            ..PromptCheckConfig::default()
        })
        .unwrap();
        assert_eq!(more.check_text("a Zebra").as_deref(), Some("zebra"));
        assert_eq!(more.check_text("nude").as_deref(), Some("nude"));
        let off = PromptChecker::new(&PromptCheckConfig {
            enabled: false,
            ..PromptCheckConfig::default()
        })
        .unwrap();
        assert_eq!(off.check_text("nude"), None);
    }
}
