//! "Did you mean ...?" for misspelt keys and values.

/// Edit distance (insertions, deletions, substitutions), on characters.
pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // One row of the dynamic-programming table is enough: each cell needs only its left,
    // upper and upper-left neighbours.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The candidate closest to `input`, if it is close enough to be a plausible typo.
///
/// Case is ignored so that `ifnotpresent` finds `IfNotPresent`. The allowed distance grows
/// with the candidate's length: one slip in a short word, up to a third of a long one.
pub(super) fn closest<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&input, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `x`?` or nothing, to append to a message.
pub(super) fn did_you_mean(input: &str, candidates: &[&str]) -> String {
    match closest(input, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("mout_path", "mount_path"), 1);
        assert_eq!(levenshtein("flaw", "lawn"), 2);
    }

    #[test]
    fn suggestions() {
        let keys = [
            "name",
            "image",
            "tag",
            "pull_policy",
            "mount_path",
            "sub_path",
            "pin",
        ];
        assert_eq!(closest("mout_path", &keys), Some("mount_path"));
        assert_eq!(closest("subpath", &keys), Some("sub_path"));
        assert_eq!(closest("tags", &keys), Some("tag"));
        assert_eq!(closest("volume", &keys), None);
        assert_eq!(
            closest("ifnotpresent", &["Always", "IfNotPresent", "Never"]),
            Some("IfNotPresent")
        );
        assert_eq!(did_you_mean("zzz", &keys), "");
    }
}
