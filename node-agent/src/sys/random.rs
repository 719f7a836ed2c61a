//! Random bytes from the kernel's CSPRNG, for ids that must be neither guessed nor enumerated
//! (console session ids).

use std::io;

/// Fills `buf` from getrandom(2) (the urandom source, which blocks only until the pool is
/// first seeded at boot).
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the buffer is valid for `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}
