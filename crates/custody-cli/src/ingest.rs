//! `custody ingest`: stream files into the log.
//!
//! Native NDJSON: a reader deals lines in chunks to one preparing thread per core (parse,
//! redact, canonicalize, hash), a collector takes the chunks back in input order and forms
//! batches, and the caller's thread appends each batch in one transaction followed by a
//! signed checkpoint (another thread frees the written batch). Other formats take the same
//! route: the reader splits the input into records (a `{"Records": [...]}` document is
//! checked whole, then split into its records' bytes), and the preparing threads parse and
//! convert each record through its adapter before preparing it. Memory stays bounded by the
//! channels (a few chunks per worker and two batches in flight) whatever the input size, plus
//! the bytes of one JSON document when the input is one. A count is reported only after its
//! batch has committed, so an ingest killed part-way never claims more than is stored,
//! and re-running it completes the rest (already-stored lines count as duplicates).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};

use anyhow::{anyhow, Result};

use custody_ingest::adapters::{self, Format};
use custody_ingest::{IngestSummary, NdjsonReader, Preparer};
use custody_model::Redactor;
use custody_store::{LeanEvent, Ledger, LineOrigin, NewEvent, Rejected};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{EXIT_QUARANTINED, EXIT_USAGE};

/// Events per transaction. Each batch rewrites the pages of the link index it touches, nearly
/// all of them, so larger batches write less WAL per event; they hold more memory, and the
/// writer is left with the last one alone. 20,000 against 10,000 (2026-12-05, alternating
/// rounds, 2 cores): 200k events 1.79 → 1.65 s median, 100k 0.89 → 0.85 s, peak RSS of a
/// 1M ingest 130 → 192 MB; 40,000 was no faster than 20,000 and took 272 MB at 200k.
pub const BATCH: usize = 20_000;
/// 0, or 3 when lines were quarantined, or 2 when a file was unreadable.
pub fn exit_code(summary: &IngestSummary) -> u8 {
    if summary.unreadable {
        EXIT_USAGE
    } else if summary.quarantined > 0 {
        EXIT_QUARANTINED
    } else {
        0
    }
}

/// Streams input files into a ledger.
pub struct Ingester {
    preparer: Preparer,
    format: Option<Format>,
    options: adapters::Options,
    /// A second handle on the store, for the housekeeping the writer then need not do.
    maintenance: std::sync::Mutex<Option<Box<dyn custody_store::Store>>>,
}

/// Where prepared batches go: the writer's channel, and the emptied vectors of written
/// batches coming back. A batch of twenty thousand events is megabytes: reusing its vector keeps
/// the collector from asking the allocator for fresh memory (zeroed by the kernel) every batch.
struct Outlet {
    tx: crossbeam_channel::Sender<Prepared>,
    spare: crossbeam_channel::Receiver<Vec<LeanEvent>>,
    /// The input's size in bytes, when known (a file): the last batches are then made
    /// smaller ([`Tail`]).
    len: Option<u64>,
    /// The writer's nice value, which every other thread of the ingest runs below.
    writer_niceness: i32,
}

enum Prepared {
    Batch(Vec<LeanEvent>, Vec<Rejected>, u64),
    ReadError(String),
    Stats(adapters::Stats),
}

/// The first batch's size; each next batch doubles, up to [`BATCH`]. The writer waits for the
/// first batch with nothing to do, so a small one gets it going sooner. Also the smallest
/// batch of an input's end ([`Tail`]).
const FIRST_BATCH: usize = 1_000;

/// How much of a sized input is left to collect, to end it with smaller batches. When the
/// input ends, the writer is left alone with the last batch while the other core idles: with
/// full batches, up to [`BATCH`] events (a perf timeline of 200k events: about 150 ms of a
/// 1.2 s ingest). A batch is therefore sent early once it holds as many lines as the input
/// still holds (estimated from the bytes per line so far), so the batches halve towards the
/// end, down to [`FIRST_BATCH`], and the writer's last one is small.
#[derive(Clone, Copy, Default)]
struct Tail {
    /// Lines collected so far.
    lines: u64,
    /// Input bytes those lines came from.
    bytes: u64,
}

impl Tail {
    /// Whether a batch of `held` lines should go now, before its target size, because the
    /// `len`-byte input holds no more lines than that after it.
    fn ends_early(self, len: Option<u64>, held: usize) -> bool {
        let Some(len) = len else {
            return false;
        };
        if self.lines == 0 || self.bytes == 0 || held < FIRST_BATCH {
            return false;
        }
        let left = u128::from(len.saturating_sub(self.bytes)) * u128::from(self.lines)
            / u128::from(self.bytes);
        left <= held as u128
    }
}

/// The batch being collected, and how the next ones are sized.
struct Batcher<'o> {
    tx: &'o crossbeam_channel::Sender<Prepared>,
    events: Vec<LeanEvent>,
    rejected: Vec<Rejected>,
    /// The size at which the batch goes ([`FIRST_BATCH`], doubling up to [`BATCH`]).
    target: usize,
    /// Lines collected so far and the input bytes they came from (sent with each batch, for
    /// progress).
    tail: Tail,
    /// The input's size, when known.
    len: Option<u64>,
}

impl Batcher<'_> {
    /// Sends the batch when full, early at the input's end ([`Tail`]), or whatever it holds
    /// when `done`; false when the writer is gone.
    fn flush(&mut self, done: bool) -> bool {
        let held = self.events.len() + self.rejected.len();
        if !done && held < self.target && !self.tail.ends_early(self.len, held) {
            return true;
        }
        self.target = (self.target * 2).min(BATCH);
        let batch = Prepared::Batch(
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.rejected),
            self.tail.bytes,
        );
        self.tx.send(batch).is_ok()
    }
}

/// How much of the input's start format detection reads (a reader over memory can offer all
/// of it).
const DETECT_BYTES: usize = 1 << 20;

/// Lines per chunk handed to a preparing worker.
const CHUNK: usize = 512;

/// Chunks in flight per worker, each way: with [`BATCH`] events being written, this bounds
/// memory whatever the input size.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Lines read but not yet prepared, in input order.
#[derive(Default)]
struct RawChunk {
    lines: Vec<custody_ingest::RawLine>,
    /// Input bytes read up to the end of this chunk.
    bytes: u64,
    /// The input failed after these lines.
    read_error: Option<String>,
}

/// One chunk, prepared.
#[derive(Default)]
struct PreparedChunk {
    events: Vec<LeanEvent>,
    rejected: Vec<Rejected>,
    bytes: u64,
    read_error: Option<String>,
    /// What the adapters counted converting the chunk.
    stats: adapters::Stats,
}

fn prepare_chunk(
    preparer: &Preparer,
    file: &str,
    chunk: RawChunk,
    mut events: Vec<LeanEvent>,
) -> PreparedChunk {
    events.reserve(chunk.lines.len());
    let mut sink = Preparing {
        preparer,
        events,
        rejected: Vec::new(),
    };
    for raw in chunk.lines {
        let origin = LineOrigin {
            file: file.to_owned(),
            line: raw.line,
        };
        sink.keep(match raw.text {
            Ok(text) => preparer.prepare_line_to_store(&text, origin),
            Err(reason) => Err(Rejected {
                origin,
                reason,
                excerpt: String::new(),
            }),
        });
    }
    PreparedChunk {
        events: sink.events,
        rejected: sink.rejected,
        bytes: chunk.bytes,
        read_error: chunk.read_error,
        stats: adapters::Stats::default(),
    }
}

/// Converts (parse, detect, adapter) and prepares one chunk of adapter records, in order.
fn prepare_adapted_chunk(
    preparer: &Preparer,
    converter: &adapters::Converter,
    chunk: Vec<adapters::Next>,
    mut events: Vec<LeanEvent>,
) -> PreparedChunk {
    // Sized for the records (a group read from a file is many), so it seldom grows.
    let records: usize = chunk.iter().map(adapters::Next::records).sum();
    events.reserve(records + records / 4);
    let mut stats = adapters::Stats::default();
    let mut sink = Preparing {
        preparer,
        events,
        rejected: Vec::new(),
    };
    for next in chunk {
        match next {
            adapters::Next::Item(item) => adapters::Sink::item(&mut sink, item),
            adapters::Next::Raw(raw) => converter.convert(raw, &mut stats, &mut sink),
        }
    }
    PreparedChunk {
        events: sink.events,
        rejected: sink.rejected,
        stats,
        ..PreparedChunk::default()
    }
}

/// Prepares what a converter makes, as it makes it (drafts while the record they borrow
/// from is still there).
struct Preparing<'p> {
    preparer: &'p Preparer,
    events: Vec<LeanEvent>,
    rejected: Vec<Rejected>,
}

impl Preparing<'_> {
    fn keep(&mut self, prepared: Result<NewEvent, Rejected>) {
        match prepared {
            // Lean ([`LeanEvent`]: key, type, link keys, canonical bytes, leaf hash) here,
            // on the thread that prepared it: the typed event (with the typed copy of the
            // free-form `attributes`, often most of an adapter event's allocations) is freed
            // where it was allocated and its memory reused at once for the next event. Carried
            // to the writer and freed after the commit, on another thread, it cost that thread
            // the frees and this one fresh, uncached memory for every event.
            Ok(ev) => self.events.push(LeanEvent::from(ev)),
            Err(rej) => self.rejected.push(rej),
        }
    }
}

impl adapters::Sink for Preparing<'_> {
    fn item(&mut self, item: adapters::Item) {
        let prepared = self.preparer.prepare_adapted(item);
        self.keep(prepared);
    }

    fn draft(&mut self, origin: LineOrigin, draft: adapters::draft::Obj<'_>) {
        let prepared = self.preparer.prepare_draft(origin, draft);
        self.keep(prepared);
    }
}

/// How many threads prepare: one per core, at least one. On two cores the writer shares
/// them, which pays because SQLite and preparation each leave the other idle part of the
/// time.
fn workers() -> usize {
    if let Some(n) = std::env::var("CUSTODY_AB_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// How much lower than the writer's the scheduling priority of the preparing threads is (a
/// nice increment, Linux only). The writer is the pipeline's critical path: whatever else
/// runs while it waits for a core lengthens the ingest. At equal priority it got a third of
/// the time on two cores (native NDJSON, 200k events, alternating rounds: 1.08 -> 1.02 s at
/// +5).
///
/// Small, because a nice value also ranks these threads against other work on the machine
/// in the same scheduling group (the same session or cgroup), and an ingest waits for its
/// slowest preparing thread. 100k events beside two busy nice-0 processes of the same
/// session (2026-12-05, Xeon, 2 cores, alternating rounds): 2.14 s at +10 (helpers +5), 0.90 s
/// at +3 (helpers +1), 0.91 s at 0. On an idle machine +10 was a little faster: 200k events
/// 0.96 s, against 0.99 s at +3 and 1.02 s at 0 (11 rounds).
const PREPARER_NICENESS: i32 = 3;

/// How much lower than the writer's the priority of the other threads of an ingest is: the
/// reader, the collector and the thread that frees batches and checkpoints the WAL. At the
/// writer's priority they still took it off its core for about a fifth of the time (perf
/// `sched_switch`, 2026-12-05). One step below the writer and still above the preparing
/// threads, whose work they pass on; why small: [`PREPARER_NICENESS`].
const HELPER_NICENESS: i32 = 1;

/// The calling thread's nice value (0 where there is none to read).
fn niceness() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Sets this thread's nice value to `base + by` on Linux, to run below the writer whose nice
/// value is `base` (best effort: a failure only costs speed).
fn yield_to_the_writer(base: i32, by: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let _ = rustix::process::setpriority_process(Some(tid), base.saturating_add(by).min(19));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (base, by);
}

/// Runs `work` on [`workers`] threads over the chunks `next_chunk` yields (it says when a
/// chunk is the last), dealt round-robin; a collector takes the prepared chunks back in the
/// same round-robin order (so the log keeps the input order) and sends batches of [`BATCH`]
/// to the writer, then the adapters' counts. `work` gets an empty vector for the events
/// (the collector hands each worker's emptied ones back, so their memory is reused).
fn in_parallel<C: Send>(
    outlet: &Outlet,
    work: &(dyn Fn(C, Vec<LeanEvent>) -> PreparedChunk + Sync),
    mut next_chunk: impl FnMut() -> (C, bool),
) {
    let n = workers().max(1);
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(n);
        let mut from_workers = Vec::with_capacity(n);
        for _ in 0..n {
            let (raw_tx, raw_rx) = crossbeam_channel::bounded::<C>(CHUNKS_IN_FLIGHT);
            let (done_tx, done_rx) = crossbeam_channel::bounded::<PreparedChunk>(CHUNKS_IN_FLIGHT);
            let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<LeanEvent>>(CHUNKS_IN_FLIGHT);
            scope.spawn(move || {
                yield_to_the_writer(outlet.writer_niceness, PREPARER_NICENESS);
                for chunk in raw_rx {
                    let spare = back_rx.try_recv().unwrap_or_default();
                    if done_tx.send(work(chunk, spare)).is_err() {
                        break;
                    }
                }
            });
            to_workers.push(raw_tx);
            from_workers.push((done_rx, back_tx));
        }
        scope.spawn(move || {
            yield_to_the_writer(outlet.writer_niceness, HELPER_NICENESS);
            collect_chunks(&from_workers, outlet)
        });
        for w in (0..n).cycle() {
            let (chunk, last) = next_chunk();
            let sent = to_workers.get(w).is_some_and(|t| t.send(chunk).is_ok());
            if last || !sent {
                break;
            }
        }
        // Dropping the senders ends the workers, then the collector.
        drop(to_workers);
    });
}

/// The fast path: native NDJSON, one event per line, read on this thread and prepared in
/// chunks on every core ([`in_parallel`]).
fn produce_native(
    preparer: &Preparer,
    file: &str,
    input: Box<dyn BufRead + Send>,
    outlet: &Outlet,
) {
    let mut reader = NdjsonReader::new(input);
    let work = |chunk: RawChunk, spare| prepare_chunk(preparer, file, chunk, spare);
    in_parallel(outlet, &work, || {
        let mut chunk = RawChunk {
            lines: Vec::with_capacity(CHUNK),
            ..RawChunk::default()
        };
        let mut done = false;
        while chunk.lines.len() < CHUNK {
            match reader.next() {
                None => {
                    done = true;
                    break;
                }
                Some(Err(e)) => {
                    chunk.read_error = Some(format!("read failed: {e}"));
                    done = true;
                    break;
                }
                Some(Ok(raw)) => chunk.lines.push(raw),
            }
        }
        chunk.bytes = reader.bytes_read();
        (chunk, done)
    });
}

/// Takes prepared chunks from the workers in round-robin order and sends them on as batches.
fn collect_chunks(
    from_workers: &[(
        crossbeam_channel::Receiver<PreparedChunk>,
        crossbeam_channel::Sender<Vec<LeanEvent>>,
    )],
    outlet: &Outlet,
) {
    let mut batch = Batcher {
        tx: &outlet.tx,
        events: Vec::with_capacity(BATCH),
        rejected: Vec::new(),
        target: FIRST_BATCH,
        tail: Tail::default(),
        len: outlet.len,
    };
    let mut stats = adapters::Stats::default();
    'collect: for (rx, back) in from_workers.iter().cycle() {
        let Ok(chunk) = rx.recv() else {
            break 'collect;
        };
        let mut chunk_events = chunk.events;
        if batch.events.capacity() == 0 {
            // A new batch: in a written batch's vector when one is back (grown once to a
            // full batch: the first batches are smaller, and growing a vector of events a
            // chunk at a time copies it each time).
            if let Ok(spare) = outlet.spare.try_recv() {
                batch.events = spare;
            }
            batch.events.reserve(BATCH);
        }
        batch.tail.lines += (chunk_events.len() + chunk.rejected.len()) as u64;
        batch.tail.bytes = chunk.bytes;
        batch.events.append(&mut chunk_events);
        let _ = back.try_send(chunk_events);
        batch.rejected.extend(chunk.rejected);
        stats.merge(chunk.stats);
        if let Some(reason) = chunk.read_error {
            if !batch.flush(true) {
                return;
            }
            let _ = outlet.tx.send(Prepared::ReadError(reason));
            let _ = outlet.tx.send(Prepared::Stats(stats));
            return;
        }
        if !batch.flush(false) {
            return;
        }
    }
    if batch.flush(true) {
        let _ = outlet.tx.send(Prepared::Stats(stats));
    }
}

/// Records per chunk handed to a converting worker.
const ADAPTED_CHUNK: usize = 256;

/// Third-party formats (DESIGN §6), detected per record unless `format` is forced. This
/// thread reads and splits the input ([`adapters::Records::next_raw`]); parsing each
/// record, its adapter and the preparation run on every core ([`in_parallel`]).
#[allow(clippy::too_many_arguments)]
fn produce_adapted(
    preparer: &Preparer,
    file: &str,
    input: Box<dyn BufRead + Send>,
    format: Option<Format>,
    options: &adapters::Options,
    path: Option<&str>,
    len: Option<u64>,
    outlet: &Outlet,
) {
    let opened = path.and_then(|p| {
        adapters::read_file(format, std::path::Path::new(p), file, options.clone()).ok()
    });
    let mut records = match opened {
        Some(records) => records,
        None => {
            let records = adapters::read_with(format, input, file, options.clone());
            match len {
                Some(len) => records.with_size_hint(len),
                None => records,
            }
        }
    };
    let converter = records.converter();
    let work = |chunk: Vec<adapters::Next>, spare| {
        prepare_adapted_chunk(preparer, &converter, chunk, spare)
    };
    in_parallel(outlet, &work, || {
        let mut chunk = Vec::new();
        let mut weight = 0;
        while weight < ADAPTED_CHUNK {
            match records.next_raw() {
                Some(next) => {
                    weight += next.records();
                    chunk.push(next);
                }
                None => return (chunk, true),
            }
        }
        (chunk, false)
    });
    // What reading itself counted (documents that are not JSON, unreadable input).
    let _ = outlet.tx.send(Prepared::Stats(records.stats().clone()));
}

impl Ingester {
    /// An ingester redacting under `redactor`.
    pub fn new(redactor: Redactor) -> Ingester {
        Ingester {
            preparer: Preparer::new(redactor),
            format: None,
            options: adapters::Options::default(),
            maintenance: std::sync::Mutex::new(None),
        }
    }

    /// Hands housekeeping to `store`, a second handle on the ledger's store, run on another
    /// thread after each batch, so the writer never stalls on it. For SQLite that is the WAL
    /// checkpoint, which otherwise runs inside every commit that takes the WAL past 32 MiB and
    /// waits for an fsync: the writer was blocked in fsync for most of its waits (perf
    /// `sched:sched_switch`).
    pub fn with_maintenance(self, store: Box<dyn custody_store::Store>) -> Ingester {
        if let Ok(mut m) = self.maintenance.lock() {
            *m = Some(store);
        }
        self
    }

    /// Settings the input does not carry (an IAM snapshot for CloudTrail scopes, ...).
    pub fn with_options(mut self, options: adapters::Options) -> Ingester {
        self.options = options;
        self
    }

    /// Reads every input as `format` instead of detecting it (`None`: detect per record).
    pub fn with_format(mut self, format: Option<Format>) -> Ingester {
        self.format = format;
        self
    }

    /// Whether `input` can take the fast path: native `custody-event/1` NDJSON, one complete
    /// object on its first line, not compressed.
    fn is_native_ndjson(&self, input: &mut Box<dyn BufRead + Send>) -> bool {
        if !matches!(self.format, None | Some(Format::Custody)) {
            return false;
        }
        let Ok(peek) = input.fill_buf() else {
            return false;
        };
        let first_line = peek.split(|&b| b == b'\n').next().unwrap_or_default();
        let Some(first) = serde_json::from_slice::<serde_json::Value>(first_line)
            .ok()
            .filter(serde_json::Value::is_object)
        else {
            return false;
        };
        // The first line names the format as a rule; only when it does not is the start of
        // the file read as text (a megabyte checked as UTF-8 and searched: about 7 million
        // instructions, which a small file paid again for every file).
        self.format == Some(Format::Custody)
            || match adapters::detect_parsed(&first) {
                Some(format) => format == Format::Custody,
                None => {
                    adapters::detect(peek.get(..DETECT_BYTES).unwrap_or(peek))
                        == Some(Format::Custody)
                }
            }
    }

    /// Ingests every file (`-` is standard input); a file that cannot be opened is reported
    /// and the others go on.
    pub fn ingest_files(
        &self,
        ledger: &mut Ledger,
        files: &[String],
        progress: bool,
    ) -> Result<IngestSummary> {
        let mut summary = IngestSummary::default();
        let show = progress && std::io::stderr().is_terminal();
        for name in files {
            let (input, len): (Box<dyn BufRead + Send>, Option<u64>) = if name == "-" {
                (
                    Box::new(BufReader::with_capacity(1 << 20, std::io::stdin())),
                    None,
                )
            } else {
                match File::open(name) {
                    Ok(f) => {
                        let len = f.metadata().ok().map(|m| m.len());
                        (Box::new(BufReader::with_capacity(1 << 20, f)), len)
                    }
                    Err(e) => {
                        summary.unreadable = true;
                        summary.note_error(name, 0, &format!("cannot open: {e}"));
                        continue;
                    }
                }
            };
            let bar = show.then(|| progress_bar(name, len));
            let path = (name != "-").then_some(name.as_str());
            self.ingest_sized(ledger, name, input, path, len, &mut summary, bar.as_ref())?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        }
        summary.size = ledger.store().size()?;
        Ok(summary)
    }

    /// Ingests one stream named `name`: native NDJSON on the fast path, anything else through
    /// the adapters.
    pub fn ingest_reader(
        &self,
        ledger: &mut Ledger,
        name: &str,
        input: Box<dyn BufRead + Send>,
        summary: &mut IngestSummary,
        bar: Option<&ProgressBar>,
    ) -> Result<()> {
        self.ingest_sized(ledger, name, input, None, None, summary, bar)
    }

    /// [`Ingester::ingest_reader`] of an input of about `len` bytes when known, read from
    /// the file at `path` (which `input` reads) when there is one: a large JSON document in
    /// a file is then never held in memory whole ([`adapters::read_file`]).
    #[allow(clippy::too_many_arguments)]
    fn ingest_sized(
        &self,
        ledger: &mut Ledger,
        name: &str,
        input: Box<dyn BufRead + Send>,
        path: Option<&str>,
        len: Option<u64>,
        summary: &mut IngestSummary,
        bar: Option<&ProgressBar>,
    ) -> Result<()> {
        // A rendezvous channel: a prepared batch waits in the collector's hands until the
        // writer takes it, and no queue of batches builds up before the writer. When the input
        // ends, the writer (the bottleneck) is left with the batch it is writing and at most
        // one more. With two queued batches it was left writing up to 30,000 events alone
        // while the other core idled (a perf timeline of 100k events: a 250 ms tail, 100 ms
        // with this channel), and peak memory was 20-35 MB higher; wall time in alternating
        // rounds was the same within the noise (2026-12-05).
        let mut input = input;
        let native = self.is_native_ndjson(&mut input);
        let (tx, rx) = crossbeam_channel::bounded::<Prepared>(0);
        let (spare_tx, spare) = crossbeam_channel::bounded::<Vec<LeanEvent>>(2);
        let outlet = Outlet {
            tx,
            spare,
            // Native chunks say how many input bytes they came from; adapters' do not.
            len: if native { len } else { None },
            writer_niceness: niceness(),
        };
        let writer_niceness = outlet.writer_niceness;
        let preparer = self.preparer.clone();
        let file = name.to_owned();
        let path = path.map(str::to_owned);
        let format = self.format;
        let options = self.options.clone();
        // Freeing a written batch (twenty thousand events' strings) is work the writer, the
        // bottleneck, need not do: another thread drops it.
        let (spent_tx, spent_rx) = crossbeam_channel::bounded::<Vec<LeanEvent>>(SPENT_IN_FLIGHT);
        let mut maintenance = self.maintenance.lock().ok();
        let maintenance = maintenance.as_mut().and_then(|m| m.as_mut());
        if maintenance.is_some() {
            ledger.defer_maintenance().map_err(|e| anyhow!("{e}"))?;
        }
        std::thread::scope(|scope| -> Result<()> {
            scope.spawn(move || {
                yield_to_the_writer(outlet.writer_niceness, HELPER_NICENESS);
                if native {
                    produce_native(&preparer, &file, input, &outlet);
                } else {
                    produce_adapted(
                        &preparer,
                        &file,
                        input,
                        format,
                        &options,
                        path.as_deref(),
                        len,
                        &outlet,
                    );
                }
            });
            scope.spawn(move || {
                yield_to_the_writer(writer_niceness, HELPER_NICENESS);
                for first in spent_rx.iter() {
                    // With the batches written while the last checkpoint ran: all freed
                    // before the next checkpoint, which copies them all at once.
                    for mut spent in std::iter::once(first).chain(spent_rx.try_iter()) {
                        spent.clear();
                        // Back to the collector for a next batch (dropped when it is done).
                        let _ = spare_tx.try_send(spent);
                    }
                    if let Some(m) = &maintenance {
                        // Best effort: a checkpoint that fails now is done by a later one,
                        // or when the store closes.
                        let _ = m.maintain();
                    }
                }
            });
            for prepared in rx {
                match prepared {
                    Prepared::Batch(events, rejected, bytes) => {
                        if events.is_empty() && rejected.is_empty() {
                            continue;
                        }
                        let outcome = ledger
                            .append_lean(&events, &rejected)
                            .map_err(|e| anyhow!("{e}"))?;
                        summary.accepted += outcome.accepted;
                        summary.duplicates += outcome.duplicates;
                        summary.quarantined += outcome.quarantined;
                        for r in rejected.iter().chain(outcome.conflicts.iter()) {
                            summary.note_error(&r.origin.file, r.origin.line, &r.reason);
                        }
                        if let Some(bar) = bar {
                            bar.set_position(bytes);
                            bar.set_message(format!("{} accepted", summary.accepted));
                        }
                        let _ = spent_tx.send(events);
                    }
                    Prepared::ReadError(reason) => {
                        summary.unreadable = true;
                        summary.note_error(name, 0, &reason);
                    }
                    Prepared::Stats(stats) => {
                        for (reason, n) in stats.skipped {
                            *summary.skipped.entry(reason).or_default() += n;
                        }
                        for (format, n) in stats.formats {
                            *summary.formats.entry(format).or_default() += n;
                        }
                    }
                }
            }
            // The dropping thread ends when its channel closes (on an early return too: the
            // closure owns the sender).
            drop(spent_tx);
            Ok(())
        })?;
        summary
            .errors
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Ok(())
    }
}

/// Written batches that may wait for the thread that frees them and checkpoints the WAL. A
/// checkpoint takes 20–40 ms (copying and two `fsync`s); with room for one batch the writer
/// waited for it to end, the other core idle: the writer had no samples in 20 ms spans where
/// the checkpointing thread was busy (perf, 100k events, 2026-12-05).
const SPENT_IN_FLIGHT: usize = 3;

fn progress_bar(name: &str, len: Option<u64>) -> ProgressBar {
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})"
    } else {
        "{prefix} {spinner} {bytes} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_owned());
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use custody_merkle::NoteSigner;
    use custody_store_sqlite::SqliteStore;

    #[test]
    fn a_batch_goes_early_once_it_holds_what_the_input_has_left() {
        // 1,000 lines from 100,000 bytes: 100 bytes a line; 900,000 bytes left, 9,000 lines.
        let tail = Tail {
            lines: 1_000,
            bytes: 100_000,
        };
        let len = Some(1_000_000);
        assert!(!tail.ends_early(len, 8_999));
        assert!(tail.ends_early(len, 9_000));
        // Unknown size: only the target counts.
        assert!(!tail.ends_early(None, 19_999));
        // Never smaller than the first batch, even at the very end.
        let end = Tail {
            lines: 10_000,
            bytes: 1_000_000,
        };
        assert!(!end.ends_early(len, FIRST_BATCH - 1));
        assert!(end.ends_early(len, FIRST_BATCH));
        // Nothing collected yet: no estimate.
        assert!(!Tail::default().ends_early(len, 5_000));
    }

    /// A thread set below the writer runs at the writer's value plus the increment, capped
    /// at 19 (and the writer's own value is left alone).
    #[cfg(target_os = "linux")]
    #[test]
    fn threads_yield_to_the_writer_by_their_increment() {
        let writer = niceness();
        let (helper, preparer, capped) = std::thread::scope(|s| {
            let helper = s.spawn(|| {
                yield_to_the_writer(writer, HELPER_NICENESS);
                niceness()
            });
            let preparer = s.spawn(|| {
                yield_to_the_writer(writer, PREPARER_NICENESS);
                niceness()
            });
            let capped = s.spawn(|| {
                yield_to_the_writer(writer, 40);
                niceness()
            });
            (
                helper.join().unwrap(),
                preparer.join().unwrap(),
                capped.join().unwrap(),
            )
        });
        assert_eq!(helper, (writer + HELPER_NICENESS).min(19));
        assert_eq!(preparer, (writer + PREPARER_NICENESS).min(19));
        assert_eq!(capped, 19);
        assert_eq!(niceness(), writer);
        const { assert!(HELPER_NICENESS < PREPARER_NICENESS) };
    }

    /// The batch sizes of an ingest, read back from the checkpoint signed after each.
    fn batches_of(lines: u64) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, crate::synth::ndjson(7, lines)).unwrap();
        let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        let signer = NoteSigner::generate("test/log", [3; 32]).unwrap();
        let mut ledger = Ledger::new(Box::new(store), signer, "test/log");
        let summary = Ingester::new(Redactor::new(b"k"))
            .ingest_files(&mut ledger, &[input.display().to_string()], false)
            .unwrap();
        assert_eq!(summary.accepted, lines);
        let mut sizes: Vec<u64> = ledger
            .store()
            .checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        sizes.sort_unstable();
        sizes.insert(0, 0);
        sizes.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[test]
    fn a_file_ends_with_small_batches() {
        // The doubling batches leave about 5,000 lines of 12,000: one batch without the tail
        // rule, shrinking batches with it.
        let batches = batches_of(12_000);
        assert_eq!(batches.iter().sum::<u64>(), 12_000);
        // Whole chunks of CHUNK lines: 1,024, 2,048, 4,096.
        assert!(batches.len() > 4, "{batches:?}");
        let last = *batches.last().unwrap();
        assert!(
            last <= 2 * FIRST_BATCH as u64,
            "last batch {last}: {batches:?}"
        );
        assert!(
            batches[3..].windows(2).all(|w| w[1] <= w[0]),
            "the batches after the doubling ones shrink: {batches:?}"
        );
    }
}
