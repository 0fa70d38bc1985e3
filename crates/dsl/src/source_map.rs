//! The texts of the files loaded together, for turning byte offsets into lines and columns.

use crate::diagnostic::SourceId;

/// Source texts by [`SourceId`]: their names (paths as the user wrote them) and contents.
///
/// Pure data: whoever reads the files adds them here; diagnostics carry only ids and spans.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    sources: Vec<Source>,
}

#[derive(Clone, Debug)]
struct Source {
    name: String,
    text: String,
    /// Byte offsets where lines start (the first is 0).
    line_starts: Vec<usize>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a source and returns its id (ids count up from 0).
    pub fn add(&mut self, name: String, text: String) -> SourceId {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(index, _)| index + 1)).collect();
        let id = SourceId(u32::try_from(self.sources.len()).expect("fewer than 2^32 sources"));
        self.sources.push(Source { name, text, line_starts });
        id
    }

    /// The name of source `id`.
    ///
    /// # Panics
    /// If `id` was not handed out by this map (a bug in the caller).
    pub fn name(&self, id: SourceId) -> &str {
        &self.source(id).name
    }

    /// The text of source `id`.
    ///
    /// # Panics
    /// If `id` was not handed out by this map.
    pub fn text(&self, id: SourceId) -> &str {
        &self.source(id).text
    }

    /// The 1-based line and column (in characters) of `byte_offset` in source `id`.
    /// Offsets past the end, or inside a character, count as the nearest position before.
    ///
    /// # Panics
    /// If `id` was not handed out by this map.
    pub fn line_col(&self, id: SourceId, byte_offset: usize) -> (usize, usize) {
        let source = self.source(id);
        let mut offset = byte_offset.min(source.text.len());
        while !source.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = source.line_starts.partition_point(|&start| start <= offset);
        let line_start = source.line_starts[line - 1];
        let col = source.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// The ids of all sources, in the order they were added.
    pub fn ids(&self) -> impl Iterator<Item = SourceId> {
        (0..self.sources.len()).map(|index| SourceId(index as u32))
    }

    fn source(&self, id: SourceId) -> &Source {
        self.sources.get(id.0 as usize).unwrap_or_else(|| panic!("unknown source id {}", id.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_in_characters() {
        let mut map = SourceMap::new();
        let id = map.add("a.ss".to_owned(), "ab\néx\n".to_owned());
        assert_eq!(map.name(id), "a.ss");
        assert_eq!(map.line_col(id, 0), (1, 1));
        assert_eq!(map.line_col(id, 2), (1, 3));
        assert_eq!(map.line_col(id, 3), (2, 1));
        assert_eq!(map.line_col(id, 5), (2, 2), "after the two-byte é");
        assert_eq!(map.line_col(id, 4), (2, 1), "inside é");
        assert_eq!(map.line_col(id, 99), (3, 1));
    }
}
