//! Reading the files a person points sagaflow at (workflows, inputs, configs,
//! seeds, templates): regular files only, never more than a bound.
//!
//! A FIFO, a device or a socket named like a workflow would block a plain
//! `read` forever (a FIFO with no writer never ends) or stream without end: it
//! is opened without blocking and refused once `fstat` says what it is.

use std::io::{self, Read};
use std::path::Path;

/// The bytes of a regular file, at most `max` plus one (so a caller tells a
/// file over the bound apart), or why it cannot be read.
pub(crate) fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of a regular file of at most `max` bytes; a larger file, or one
/// that is not UTF-8, is an error that says so.
pub(crate) fn read_regular_text(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read_regular(path, max)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the file is larger than {}", size(max))));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Opens a path that must be a regular file (a link to one is followed).
fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading blocks until a writer comes; this does not.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = describe(&kind);
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("it is {what}, not a regular file")));
    }
    Ok(file)
}

/// What a file that is not a regular file is, in words.
fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// A byte count as a person reads it: MiB (whole, or to a tenth), else whole
/// KiB, else bytes.
pub(crate) fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b if b >= 1024 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("order.yaml");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        let e = read_regular(&fifo, 1024).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO (named pipe), not a regular file");
        let e = read_regular(dir.path(), 1024).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn a_file_is_read_up_to_one_byte_past_the_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b'x'; 5000]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_regular(&path, 1024).map(|b| b.len()).ok(), Some(1025));
        let e = read_regular_text(&path, 1024).unwrap_err();
        assert_eq!(e.to_string(), "the file is larger than 1 KiB");
        assert_eq!(read_regular_text(&path, 5000).map(|t| t.len()).ok(), Some(5000));
    }
}
