//! Copying a file's bytes while hashing them, keeping its holes.
//!
//! A sparse file (a VM image, a preallocated database file: gigabytes long, a few blocks
//! written) read and written byte for byte comes out fully allocated: a 3 GiB file that used
//! 4 KiB took 3 GiB in the store, and 3 GiB more once an undo wrote it back. So the copy asks
//! the source where its data is (`lseek` with `SEEK_HOLE` and `SEEK_DATA`) and, for each hole,
//! hashes the zeros it reads as and moves the destination's offset past them instead of writing
//! them: the destination gets a hole there. A blob captured from a sparse file is sparse in the
//! store, and a restore from it is sparse again. Zeros the source holds in allocated blocks are
//! written as zeros (a file preallocated on purpose stays allocated). A file system that does
//! not say where holes are reports the whole file as data: the copy is then a plain one.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use crate::backup::BlobId;
use crate::fsutil::{IoContext as _, IoError};

/// Copies `f` (opened at `from`) from its offset to its end into `to` (named `to_path`; new and
/// empty from its offset on) in 1 MiB chunks, hashing what passes: one read of the source. Holes
/// of the source are left as holes in `to` (see the [module docs](self)). Returns the hash and
/// the number of bytes (holes included).
pub(super) fn copy_hashing(mut f: &File, from: &Path, to: &mut File, to_path: &Path) -> Result<(BlobId, u64), IoError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = f.stream_position().at("read", from)?;
    let mut len = 0u64;
    // Whether `to` ends in a hole: its length is then set at the end.
    let mut ends_in_hole = false;
    loop {
        let hole = seek(f, pos, libc::SEEK_HOLE);
        if hole == Some(pos) {
            // A hole at `pos`: up to the next data, or to the end of the file.
            let end = match seek(f, pos, libc::SEEK_DATA) {
                Some(data) => data,
                None => f.metadata().at("read metadata of", from)?.len(),
            };
            if end > pos {
                hash_zeros(&mut hasher, end - pos);
                let skip = i64::try_from(end - pos).unwrap_or(i64::MAX);
                to.seek(SeekFrom::Current(skip)).at("write", to_path)?;
                len += end - pos;
                pos = end;
                ends_in_hole = true;
                continue;
            }
        }
        // `lseek` moved the offset: back to `pos`, and read up to the next hole.
        f.seek(SeekFrom::Start(pos)).at("read", from)?;
        let data_end = hole.filter(|h| *h > pos).unwrap_or(u64::MAX);
        let want = usize::try_from(data_end.saturating_sub(pos)).unwrap_or(usize::MAX).clamp(1, buf.len());
        let n = f.read(&mut buf[..want]).at("read", from)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).at("write", to_path)?;
        if len == 0 {
            // Tests hold a copy here, part-way, to write the source meanwhile.
            crate::failpoint::hit("inside:blob_copy")
                .map_err(|e| IoError::new("copy", from, std::io::Error::other(e.to_string())))?;
        }
        len += n as u64;
        pos += n as u64;
        ends_in_hole = false;
    }
    if ends_in_hole {
        let end = to.stream_position().at("write", to_path)?;
        to.set_len(end).at("write", to_path)?;
    }
    Ok((BlobId::from_hash(hasher.finalize()), len))
}

/// `lseek(f, pos, whence)` for `SEEK_HOLE` or `SEEK_DATA`: the offset found, or `None` (no
/// data at or after `pos`: `ENXIO`; or a file system that cannot tell).
fn seek(f: &File, pos: u64, whence: libc::c_int) -> Option<u64> {
    let at = libc::off_t::try_from(pos).ok()?;
    // SAFETY: a valid descriptor; `lseek` reads nothing through pointers.
    #[allow(unsafe_code)]
    let r = unsafe { libc::lseek(f.as_raw_fd(), at, whence) };
    u64::try_from(r).ok()
}

/// Feeds `n` zero bytes to `hasher`.
fn hash_zeros(hasher: &mut blake3::Hasher, mut n: u64) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    while n > 0 {
        let take = usize::try_from(n).unwrap_or(usize::MAX).min(ZEROS.len());
        hasher.update(&ZEROS[..take]);
        n -= take as u64;
    }
}
