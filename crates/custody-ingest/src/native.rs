//! Native `custody-event/1` NDJSON: one JSON object per line (DESIGN §3).
//!
//! The reader streams: it holds one line at a time, so memory stays flat whatever the file
//! size. Blank lines are skipped; a line that is not valid UTF-8 is reported, not dropped.

use std::io::BufRead;

/// One line of input with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number.
    pub line: u64,
    /// The text, or why it is unreadable.
    pub text: Result<String, String>,
}

/// Streams the non-blank lines of an NDJSON input.
pub struct NdjsonReader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
    bytes_read: u64,
}

impl<R: BufRead> NdjsonReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        NdjsonReader {
            input,
            line: 0,
            buf: Vec::with_capacity(4096),
            bytes_read: 0,
        }
    }

    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

impl<R: BufRead> Iterator for NdjsonReader<R> {
    type Item = std::io::Result<RawLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => {
                    self.line += 1;
                    self.bytes_read += n as u64;
                    let trimmed = self.buf.trim_ascii();
                    if trimmed.is_empty() {
                        continue;
                    }
                    let text = std::str::from_utf8(trimmed)
                        .map(str::to_owned)
                        .map_err(|e| format!("line is not valid UTF-8 ({e})"));
                    return Some(Ok(RawLine {
                        line: self.line,
                        text,
                    }));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn skips_blank_lines_and_counts_all_lines() {
        let input = b"{\"a\":1}\n\n  \n{\"b\":2}\r\n\xff\xfe\n{\"c\":3}";
        let lines: Vec<RawLine> = NdjsonReader::new(&input[..]).map(|l| l.unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].line, 1);
        assert_eq!(lines[1].line, 4);
        assert_eq!(lines[1].text.as_deref(), Ok("{\"b\":2}"));
        assert!(lines[2].text.is_err());
        assert_eq!(lines[3].line, 6);
    }
}
