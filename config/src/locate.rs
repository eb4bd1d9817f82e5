//! Maps field paths (`vips[2].services[0].check.interval`) to where their
//! value stands in the YAML text, so validation errors can name a line and
//! column. Built from the parser's event stream; it never fails: a path it
//! cannot place just has no location.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// 1-based line and column of a value in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// Path → position of every node in the document.
#[derive(Debug, Default)]
pub struct Locations {
    by_path: HashMap<String, Position>,
    /// (position, path), in document order, for finding the path of a position.
    ordered: Vec<(Position, String)>,
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

impl Locations {
    /// Walks `src` once. Parse errors end the walk: the positions seen so far
    /// stay usable.
    pub fn of(src: &str) -> Self {
        let mut out = Locations::default();
        let mut stack: Vec<(String, Frame)> = Vec::new();
        for item in Parser::new_from_str(src) {
            let Ok((event, span)) = item else { break };
            let pos = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(ref text, ..) => {
                    if let Some((_, Frame::Map { key })) = stack.last_mut()
                        && key.is_none()
                    {
                        *key = Some(text.to_string());
                        // Errors about a key (unknown field) point here.
                        out.ordered.push((pos, current_path(&stack)));
                        continue;
                    }
                    out.record(&mut stack, pos);
                    out.advance(&mut stack);
                }
                Event::Alias(_) => {
                    out.record(&mut stack, pos);
                    out.advance(&mut stack);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = out.record(&mut stack, pos);
                    let frame = if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { key: None }
                    } else {
                        Frame::Seq { index: 0 }
                    };
                    stack.push((path, frame));
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    out.advance(&mut stack);
                }
                _ => {}
            }
        }
        out
    }

    /// Records a value at the current path and moves the parent on.
    fn record(&mut self, stack: &mut [(String, Frame)], pos: Position) -> String {
        let path = current_path(stack);
        self.by_path.entry(path.clone()).or_insert(pos);
        self.ordered.push((pos, path.clone()));
        path
    }

    fn advance(&mut self, stack: &mut [(String, Frame)]) {
        match stack.last_mut() {
            Some((_, Frame::Map { key })) => *key = None,
            Some((_, Frame::Seq { index })) => *index += 1,
            None => {}
        }
    }

    /// Where the value at `path` starts.
    pub fn get(&self, path: &str) -> Option<Position> {
        self.by_path.get(path).copied()
    }

    /// The path of the innermost node that starts at or before `pos`.
    pub fn path_at(&self, line: usize, column: usize) -> Option<&str> {
        self.ordered
            .iter()
            .rev()
            .find(|(p, _)| (p.line, p.column) <= (line, column))
            .map(|(_, path)| path.as_str())
    }
}

fn current_path(stack: &[(String, Frame)]) -> String {
    let Some((parent, frame)) = stack.last() else {
        return String::new();
    };
    match frame {
        Frame::Map { key } => {
            let key = key.as_deref().unwrap_or("?");
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        Frame::Seq { index } => format!("{parent}[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_paths() {
        let src = "node:\n  asn: 1\nvips:\n  - name: a\n    ports: [{port: 80}]\n  - name: b\n";
        let l = Locations::of(src);
        assert_eq!(l.get("node.asn"), Some(Position { line: 2, column: 8 }));
        assert_eq!(
            l.get("vips[1].name"),
            Some(Position {
                line: 6,
                column: 11
            })
        );
        assert_eq!(l.get("vips[0].ports[0].port").map(|p| p.line), Some(5));
        assert_eq!(l.path_at(6, 12), Some("vips[1].name"));
        assert!(l.get("vips[2]").is_none());
    }
}
