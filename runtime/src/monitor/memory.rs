//! Memory trimming: an idle monitor gives back the pages only its start-up needed (code,
//! heap, stack), so its resident set stays what it touches while the container runs.

use std::time::Duration;

/// How long the monitor idles before letting go of its start-up memory (see `trim_memory`).
pub(crate) const IDLE_TRIM_AFTER: Duration = Duration::from_millis(200);

/// An address range of this process's memory: (start, end).
pub(crate) type Range = (usize, usize);

/// Lets go of the memory an idle monitor no longer needs, so its resident set is only what
/// it touches from then on: the start-up code's pages, the heap freed after start-up, the
/// stack below the current frame and the pages of the output buffer `scratch`. Returns the
/// code mappings it dropped, for [`retrim_code_pages`].
pub(crate) fn trim_memory(scratch: &mut [u8]) -> Vec<Range> {
    let (code, stack) = trim_code_pages();
    trim_heap(scratch);
    if let Some((start, _)) = stack {
        trim_stack_below_here(start);
    }
    code
}

/// The heap part of [`trim_memory`], repeated after each busy spell (a burst of output, a
/// healthcheck, relayed connections): free heap pages and the output buffer's pages go back.
pub(crate) fn trim_heap(scratch: &mut [u8]) {
    release_pages(scratch);
    // SAFETY: malloc_trim only returns free heap memory to the kernel (madvise of free
    // chunks and a shrunk top); no live allocation is touched.
    unsafe { libc::malloc_trim(0) };
}

/// Gives the whole pages inside `buf` back to the kernel; they read as zeros afterwards and
/// become resident again only when written. For scratch buffers whose contents don't matter.
fn release_pages(buf: &mut [u8]) {
    let page = 4096;
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_mut_ptr() as usize + buf.len()) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, which we borrow exclusively, and heap memory is
        // private anonymous memory: MADV_DONTNEED keeps it mapped and makes it read back as
        // zeros, a valid value for u8, so `buf` stays a valid (zeroed) slice there.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Drops again, after a busy spell, the pages of the code mappings `known` that the first trim
/// found droppable (logging or a healthcheck pages code back in). Only a mapping still present
/// with the same bounds, a read-only private file mapping, is touched; /proc/self/maps is
/// read rather than smaps, which would walk every page table again.
pub(crate) fn retrim_code_pages(known: &[Range]) {
    if known.is_empty() {
        return;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(path)) = (f.next(), f.next(), f.nth(3)) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        if (perms == "r-xp" || perms == "r--p")
            && path.starts_with('/')
            && known.contains(&(start, end))
        {
            // SAFETY: the same read-only private file mapping the first trim checked had no
            // anonymous page (it can't gain one: it is not writable); MADV_DONTNEED only unmaps
            // page-cache pages, which fault back in unchanged on the next access.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// Drops the resident pages of clean read-only file mappings (code and constants of our binary
/// and its libraries) and returns them and the main stack's range. Only mappings with no anonymous
/// (copied-on-write) page qualify: relocated RELRO data is anonymous (after a fork, e.g. the
/// `--init` process is a forked copy of the monitor, it shows as Shared_Dirty but is still
/// Anonymous); discarding it would bring back the unrelocated file contents. Dirty page-cache
/// pages (a binary written moments ago) are fine to unmap: the page cache keeps them.
fn trim_code_pages() -> (Vec<Range>, Option<Range>) {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return (Vec::new(), None) };
    // (start, end, eligible so far)
    let mut cur: Option<(usize, usize, bool)> = None;
    let mut candidates = Vec::new();
    let mut stack = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(first), Some(second)) = (f.next(), f.next()) else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            if let Some((s, e, true)) = cur {
                candidates.push((s, e));
            }
            let path = f.nth(3).unwrap_or("");
            if path == "[stack]" {
                stack = Some((start, end));
            }
            let eligible = (second == "r-xp" || second == "r--p") && path.starts_with('/');
            cur = Some((start, end, eligible));
            continue;
        }
        if matches!(first, "Private_Dirty:" | "Anonymous:")
            && second != "0"
            && let Some((_, _, eligible)) = cur.as_mut()
        {
            *eligible = false;
        }
    }
    if let Some((s, e, true)) = cur {
        candidates.push((s, e));
    }
    for &(start, end) in &candidates {
        // SAFETY: the range is a whole read-only private file mapping of this process with no
        // anonymous page (from /proc/self/smaps); MADV_DONTNEED only unmaps page-cache pages,
        // which fault back in unchanged on the next access.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    (candidates, stack)
}

/// Discards the main stack's pages below the current frame (less a margin for the calls made
/// from here), which start-up's deep calls (spec building, the launcher) left resident. Memory
/// below the stack pointer holds nothing live; a page touched again comes back zero-filled.
#[inline(never)]
fn trim_stack_below_here(stack_start: usize) {
    const MARGIN: usize = 16 * 1024;
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let page = 4096;
    let end = (sp.saturating_sub(MARGIN)) & !(page - 1);
    if sp < stack_start || end <= stack_start {
        return;
    }
    // SAFETY: [stack_start, end) lies in this thread's stack mapping and at least MARGIN below
    // the current frame, so no live frame (this one, or the libc call below it) is there;
    // MADV_DONTNEED on anonymous memory makes it read back as zeros, which is fine for memory
    // nothing will read before writing.
    unsafe {
        libc::madvise(stack_start as *mut libc::c_void, end - stack_start, libc::MADV_DONTNEED)
    };
}
