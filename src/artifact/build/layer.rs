//! The layer as written: the tar stream cut into blocks, deflated in parallel and put back in
//! order as one gzip member, both digests taken on the way (the scheme: `build`'s module doc).

use super::archive::{Hashing, write_tar};
use super::{BuildError, Entry, GZIP_BLOCK, GZIP_DICT, GZIP_HEADER, GZIP_LEVEL};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// The layer as written: its two digests and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// sha256 of the gzip bytes: the manifest's layer digest.
    pub digest: String,
    /// sha256 of the uncompressed tar: the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Bytes of the gzip stream.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    pub files: usize,
    /// Sum of the files' sizes.
    pub file_bytes: u64,
}

/// Writes the layer for `entries` (from `collect`) of `dir` into `out`, hashing the tar and the
/// gzip streams in the same pass. Returns the layer and `out`.
///
/// Threads: this one reads the files and writes and hashes the tar; compressors deflate its
/// blocks (one per core); a writer puts the pieces in order, hashes and writes them. At most
/// `2 * compressors + 2` blocks are in flight, so memory stays a few MiB.
pub fn write_layer<W: Write + Send>(
    dir: &Path,
    entries: &[Entry],
    out: W,
) -> Result<(Layer, W), BuildError> {
    let compressors = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    write_layer_with(dir, entries, out, compressors)
}

/// `write_layer` with a given number of compressing threads (the bytes do not depend on it).
pub(super) fn write_layer_with<W: Write + Send>(
    dir: &Path,
    entries: &[Entry],
    out: W,
    compressors: usize,
) -> Result<(Layer, W), BuildError> {
    let werr = |source| BuildError::Write { source };
    let in_flight = 2 * compressors + 2;
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Block>(in_flight);
    let job_rx = std::sync::Mutex::new(job_rx);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Deflated>();
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        for _ in 0..compressors {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || compress_blocks(job_rx, done_tx));
        }
        drop(done_tx);
        let writer = scope.spawn(move || write_blocks(out, done_rx, free_tx));
        let blocks = Blocks {
            jobs: job_tx,
            free: free_rx,
            buf: Vec::new(),
            dict: Vec::new(),
            seq: 0,
            allocated: 0,
            in_flight,
        };
        let produced = write_tar(dir, entries, Hashing::new(blocks));
        // On error the channels close as `produced` is dropped: the threads stop and the
        // reader's error is the one reported.
        let (tar_layer, hashing) = produced?;
        let (diff_id, tar_size, blocks) = hashing.finish();
        blocks.finish().map_err(werr)?;
        let (digest, size, out) = writer
            .join()
            .expect("the layer writer does not panic")
            .map_err(werr)?;
        Ok((
            Layer {
                digest,
                diff_id,
                size,
                tar_size,
                files: tar_layer.0,
                file_bytes: tar_layer.1,
            },
            out,
        ))
    })
}

/// One block of the tar stream, to deflate.
struct Block {
    seq: u64,
    /// The 32 KiB of the stream before `data` (empty for the first block).
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// A deflated block: raw deflate ending on a byte boundary (sync flush), or the final block.
struct Deflated {
    seq: u64,
    last: bool,
    data: Vec<u8>,
    deflated: io::Result<Vec<u8>>,
    crc: flate2::Crc,
}

/// The tar side: cuts what it is given into `GZIP_BLOCK`s and hands them to the compressors,
/// reusing the buffers the writer sends back.
struct Blocks {
    jobs: std::sync::mpsc::SyncSender<Block>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    dict: Vec<u8>,
    seq: u64,
    allocated: usize,
    in_flight: usize,
}

fn gone() -> io::Error {
    io::Error::other("the layer writer stopped")
}

impl Blocks {
    fn send(&mut self, last: bool) -> io::Result<()> {
        let next = if last {
            Vec::new()
        } else if self.allocated < self.in_flight {
            self.allocated += 1;
            Vec::with_capacity(GZIP_BLOCK)
        } else {
            // Blocks only when `in_flight` blocks are queued, deflating or waiting to be written.
            let mut b = self.free.recv().map_err(|_| gone())?;
            b.clear();
            b
        };
        let data = std::mem::replace(&mut self.buf, next);
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(GZIP_DICT)..].to_vec();
        let block = Block {
            seq: self.seq,
            dict,
            data,
            last,
        };
        self.seq += 1;
        self.jobs.send(block).map_err(|_| gone())
    }

    /// Sends what is left as the final block (possibly empty: it still ends the stream).
    fn finish(mut self) -> io::Result<()> {
        self.send(true)
    }
}

impl Write for Blocks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.allocated += 1;
            self.buf.reserve_exact(GZIP_BLOCK);
        }
        let n = data.len().min(GZIP_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_BLOCK {
            self.send(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress_blocks(
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Block>>,
    done: std::sync::mpsc::Sender<Deflated>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = flate2::Crc::new();
        crc.update(&job.data);
        let deflated = deflate_block(&job.dict, &job.data, job.last);
        let out = Deflated {
            seq: job.seq,
            last: job.last,
            data: job.data,
            deflated,
            crc,
        };
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Raw deflate of `data` with `dict` as preset dictionary, ending with a sync flush (byte
/// aligned, not final) or, for the last block, with the final block.
fn deflate_block(dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{FlushCompress, Status};
    // A new compressor for every block: a reset one does not always give the same bytes (zlib-rs
    // 0.6 at level 6, seen here), and the bytes must not depend on which thread had which block
    // before. Its allocation is noise next to deflating 1 MiB.
    let mut c = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once all input is in and there was room left.
            Status::Ok | Status::BufError => {
                !last && input.is_empty() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(out);
        }
    }
}

/// Writes the deflated blocks in order between the gzip header and trailer, hashing them;
/// returns the gzip stream's digest and size, and `out`. Sends each block's buffer back.
fn write_blocks<W: Write>(
    out: W,
    done: std::sync::mpsc::Receiver<Deflated>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
) -> io::Result<(String, u64, W)> {
    let mut out = Hashing::new(out);
    out.write_all(&GZIP_HEADER)?;
    let mut crc = flate2::Crc::new();
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    let mut ended = false;
    for d in done.iter() {
        waiting.insert(d.seq, d);
        while let Some(d) = waiting.remove(&next) {
            out.write_all(&d.deflated?)?;
            crc.combine(&d.crc);
            // The tar side may be gone already (it stopped on an error, or sent its last block).
            let _ = free.send(d.data);
            next += 1;
            ended = d.last;
        }
    }
    if !ended {
        // The tar side stopped before its last block; its error is the one reported.
        return Err(gone());
    }
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    let (digest, size, mut out) = out.finish();
    out.flush()?;
    Ok((digest, size, out))
}
