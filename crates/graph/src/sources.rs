//! The registry's source texts, so diagnostics can be shown as `file:line:col`.

use safeshift_dsl::SourceId;

/// One loaded file: its path as shown to users, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path relative to the registry folder (`schemas/llama.ss`), or as given.
    pub path: String,
    /// The whole text.
    pub text: String,
}

/// All source texts of a registry, indexed by [`SourceId`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// Adds a file and returns its id.
    pub fn add(&mut self, path: String, text: String) -> SourceId {
        let id = SourceId(u32::try_from(self.files.len()).expect("fewer than 2^32 registry files"));
        self.files.push(SourceFile { path, text });
        id
    }

    /// The file with this id.
    pub fn get(&self, id: SourceId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// All files with their ids, in load order.
    pub fn iter(&self) -> impl Iterator<Item = (SourceId, &SourceFile)> {
        self.files.iter().enumerate().map(|(index, file)| (SourceId(index as u32), file))
    }

    /// The 1-based line and column (in characters) of byte `offset` in file `id`.
    pub fn line_col(&self, id: SourceId, offset: usize) -> (usize, usize) {
        let Some(file) = self.get(id) else {
            return (1, 1);
        };
        let mut offset = offset.min(file.text.len());
        while !file.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &file.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The text of `span` in file `id` (empty if out of range).
    pub fn slice(&self, id: SourceId, start: usize, end: usize) -> &str {
        self.get(id).and_then(|file| file.text.get(start..end)).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let mut sources = Sources::default();
        let id = sources.add("a.ss".into(), "ab\ncdé\nf".into());
        assert_eq!(sources.line_col(id, 0), (1, 1));
        assert_eq!(sources.line_col(id, 4), (2, 2));
        assert_eq!(sources.line_col(id, 8), (3, 1));
        assert_eq!(sources.line_col(id, 6), (2, 3));
        assert_eq!(sources.line_col(id, 999), (3, 2));
        assert_eq!(sources.line_col(SourceId(7), 0), (1, 1));
    }
}
