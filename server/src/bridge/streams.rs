//! [`Streams`]: where a legacy session's messages go, and the events kept
//! so that a client whose stream broke can resume it with `Last-Event-ID`
//! (Streamable HTTP, "Resumability and Redelivery").
//!
//! A session has streams of two kinds: *standing* ones (HTTP GET) for what
//! no call of the session names, and one *reply* stream per call answered
//! with SSE (a POST's response). Every message is an event of exactly one
//! stream, numbered in one sequence for the whole session; its id names
//! the session's tag, the stream and that number (`{tag}-{stream}-{seq}`),
//! so ids are unique across the session's streams and say which stream
//! they belong to. A connection reading a stream sends that stream's
//! events after a cursor; a client that comes back with an id gets the
//! events of that stream after it, never another stream's.
//!
//! Messages for no call go to the newest standing stream that a client is
//! reading; when none is, to the newest standing stream the client can
//! resume (it has been sent an id of it), kept for its return. The events
//! kept are bounded in count and in bytes, oldest dropped first (the
//! newest is always kept, so a large message still reaches its reader).
//! A stream whose events after the client's id were dropped is not
//! resumed with a gap: [`Refusal::Gone`], and it takes no more messages.
//!
//! Pure state, no I/O and no clock: the caller holds it under a lock and
//! wakes the readers after each change.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Idle streams (no reader, nothing kept) remembered beyond the live ones,
/// so that a late resume of one can be told "nothing missed".
const KEPT_IDLE: usize = 32;

/// One of a session's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId(u32);

/// The kinds of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A GET stream: messages no call names.
    Standing,
    /// A call's SSE reply: its messages, then its response.
    Reply,
}

/// What bounds a session's streams.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Events kept for replay (`limits.sse_replay_events`).
    pub(crate) events: usize,
    /// Bytes of events kept for replay.
    pub(crate) bytes: usize,
    /// GET connections open at once (`limits.max_streams_per_session`).
    pub(crate) readers: usize,
}

/// A connection now reading a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attached {
    /// The stream.
    pub(crate) stream: StreamId,
    /// Which reading of the stream this is (a newer one replaces it).
    pub(crate) generation: u64,
    /// The last event the client has: the reader sends those after it.
    pub(crate) cursor: u64,
    /// The id of a priming event to send first (a new GET stream), so the
    /// client can resume even a stream that stayed quiet.
    pub(crate) priming: Option<String>,
}

/// What a reader sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// This event: its id and its frame.
    Event {
        /// Its SSE id.
        id: String,
        /// Its place in the session's sequence (the reader's new cursor).
        seq: u64,
        /// The JSON-RPC frame.
        frame: Bytes,
    },
    /// Nothing yet.
    Wait,
    /// The stream is over for this reader: a reply stream sent its
    /// response, a newer reading took the stream, or the session ended.
    End,
    /// Events the reader had not sent were dropped: it must stop (the
    /// client, resuming, is told they are gone).
    Lost,
}

/// Why a stream could not be opened or resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The session has its limit of GET connections open.
    TooManyReaders,
    /// The caller's slot (the target's stream budget) is used up.
    NoSlot,
    /// The id names no event of this session: malformed, another
    /// session's, or never given.
    Unknown,
    /// The stream's events after the id are no longer kept, or the
    /// stream is no longer remembered.
    Gone,
    /// The session has ended.
    Closed,
}

#[derive(Debug)]
struct Event {
    seq: u64,
    stream: StreamId,
    frame: Bytes,
}

#[derive(Debug)]
struct Reader<S> {
    generation: u64,
    /// A GET connection (counted against the session's limit), not the
    /// POST that opened a reply stream.
    via_get: bool,
    _slot: Option<S>,
}

#[derive(Debug)]
struct Entry<S> {
    kind: Kind,
    reader: Option<Reader<S>>,
    /// The newest sequence number of the stream (an event or a priming id).
    last_seq: u64,
    /// The newest event a reader has sent.
    sent_through: u64,
    /// The newest of its events dropped from the buffer.
    lost_through: u64,
    /// Its events in the buffer.
    kept: usize,
    /// The client has been sent an id of it, so it can come back.
    resumable: bool,
    /// A reply stream whose response is in: it ends after it.
    finished: bool,
    /// Refused once as gone: it takes no more messages.
    retired: bool,
}

impl<S> Entry<S> {
    fn new(kind: Kind, last_seq: u64) -> Self {
        Entry {
            kind,
            reader: None,
            last_seq,
            sent_through: last_seq,
            lost_through: 0,
            kept: 0,
            resumable: false,
            finished: false,
            retired: false,
        }
    }

    fn idle(&self) -> bool {
        self.reader.is_none() && self.kept == 0 && (self.kind == Kind::Standing || self.finished)
    }
}

/// A session's streams and the events kept for them; `S` is the slot a
/// GET connection holds while open (the target's stream budget).
#[derive(Debug)]
pub(crate) struct Streams<S> {
    tag: String,
    limits: StreamLimits,
    /// The newest sequence number given.
    seq: u64,
    next_stream: u32,
    next_generation: u64,
    events: VecDeque<Event>,
    bytes: usize,
    entries: BTreeMap<StreamId, Entry<S>>,
    /// The standing stream attached last: messages wait there for the
    /// client while no standing stream is read.
    standing: Option<StreamId>,
    closed: bool,
}

impl<S> Streams<S> {
    /// No streams yet; `tag` marks this session's event ids.
    pub(crate) fn new(tag: String, limits: StreamLimits) -> Self {
        Streams {
            tag,
            limits,
            seq: 0,
            next_stream: 1,
            next_generation: 1,
            events: VecDeque::new(),
            bytes: 0,
            entries: BTreeMap::new(),
            standing: None,
            closed: false,
        }
    }

    fn event_id(&self, stream: StreamId, seq: u64) -> String {
        format!("{}-{}-{}", self.tag, stream.0, seq)
    }

    fn parse(&self, id: &str) -> Option<(StreamId, u64)> {
        let mut parts = id.trim().split('-');
        let (tag, stream, seq) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || tag != self.tag {
            return None;
        }
        Some((StreamId(stream.parse().ok()?), seq.parse().ok()?))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn new_stream(&mut self) -> StreamId {
        let id = StreamId(self.next_stream);
        self.next_stream = self.next_stream.saturating_add(1);
        id
    }

    fn new_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    fn get_connections(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.reader.as_ref().is_some_and(|r| r.via_get))
            .count()
    }

    /// Opens a standing stream for a GET, with a priming event if `prime`.
    /// `slot` is asked only once the session's own limit allows it.
    pub(crate) fn open_standing(
        &mut self,
        prime: bool,
        slot: impl FnOnce() -> Option<S>,
    ) -> Result<Attached, Refusal> {
        if self.closed {
            return Err(Refusal::Closed);
        }
        if self.get_connections() >= self.limits.readers {
            return Err(Refusal::TooManyReaders);
        }
        let slot = slot().ok_or(Refusal::NoSlot)?;
        let stream = self.new_stream();
        let mut entry = Entry::new(Kind::Standing, self.seq);
        let priming = prime.then(|| self.next_seq());
        if let Some(seq) = priming {
            entry.last_seq = seq;
            entry.sent_through = seq;
            entry.resumable = true;
        }
        let generation = self.new_generation();
        entry.reader = Some(Reader {
            generation,
            via_get: true,
            _slot: Some(slot),
        });
        let cursor = entry.last_seq;
        self.entries.insert(stream, entry);
        self.standing = Some(stream);
        self.prune();
        Ok(Attached {
            stream,
            generation,
            cursor,
            priming: priming.map(|seq| self.event_id(stream, seq)),
        })
    }

    /// Opens the reply stream of a call, read by its POST, with a priming
    /// event if `prime`; `None` once the session has ended.
    pub(crate) fn open_reply(&mut self, prime: bool) -> Option<Attached> {
        if self.closed {
            return None;
        }
        let stream = self.new_stream();
        let generation = self.new_generation();
        let mut entry = Entry::new(Kind::Reply, self.seq);
        let priming = prime.then(|| self.next_seq());
        if let Some(seq) = priming {
            entry.last_seq = seq;
            entry.sent_through = seq;
            entry.resumable = true;
        }
        entry.reader = Some(Reader {
            generation,
            via_get: false,
            _slot: None,
        });
        let cursor = entry.last_seq;
        self.entries.insert(stream, entry);
        Some(Attached {
            stream,
            generation,
            cursor,
            priming: priming.map(|seq| self.event_id(stream, seq)),
        })
    }

    /// A GET with `Last-Event-ID: last_event_id`: the stream it names, to
    /// be read from after it. A reader still on that stream is replaced.
    pub(crate) fn resume(
        &mut self,
        last_event_id: &str,
        slot: impl FnOnce() -> Option<S>,
    ) -> Result<Attached, Refusal> {
        if self.closed {
            return Err(Refusal::Closed);
        }
        let (stream, seq) = self.parse(last_event_id).ok_or(Refusal::Unknown)?;
        let connections = self.get_connections();
        let issued = stream.0 < self.next_stream && seq <= self.seq;
        let Some(entry) = self.entries.get_mut(&stream) else {
            return Err(if issued {
                Refusal::Gone
            } else {
                Refusal::Unknown
            });
        };
        if seq > entry.last_seq {
            return Err(Refusal::Unknown);
        }
        if entry.lost_through > seq {
            entry.retired = true;
        }
        if entry.retired {
            if self.standing == Some(stream) {
                self.standing = None;
            }
            return Err(Refusal::Gone);
        }
        let old = entry.reader.take();
        let slot = match old {
            // A GET reading it already (its client left unnoticed): the
            // new one takes its place and its slot.
            Some(Reader {
                via_get: true,
                _slot,
                ..
            }) => _slot,
            other => {
                if connections >= self.limits.readers {
                    entry.reader = other;
                    return Err(Refusal::TooManyReaders);
                }
                match slot() {
                    Some(s) => Some(s),
                    None => {
                        entry.reader = other;
                        return Err(Refusal::NoSlot);
                    }
                }
            }
        };
        let generation = self.new_generation();
        let entry = self.entries.get_mut(&stream).ok_or(Refusal::Gone)?;
        entry.reader = Some(Reader {
            generation,
            via_get: true,
            _slot: slot,
        });
        entry.resumable = true;
        if entry.kind == Kind::Standing {
            self.standing = Some(stream);
        }
        Ok(Attached {
            stream,
            generation,
            cursor: seq,
            priming: None,
        })
    }

    /// Reading `generation` of `stream` has stopped (its connection
    /// closed); the stream stays, to be resumed.
    pub(crate) fn detach(&mut self, stream: StreamId, generation: u64) {
        if let Some(entry) = self.entries.get_mut(&stream) {
            if entry
                .reader
                .as_ref()
                .is_some_and(|r| r.generation == generation)
            {
                entry.reader = None;
            }
        }
        self.prune();
    }

    /// What reading `generation` of `stream`, having sent up to `cursor`,
    /// sends next.
    pub(crate) fn next(&mut self, stream: StreamId, generation: u64, cursor: u64) -> Next {
        if self.closed {
            return Next::End;
        }
        let Some(entry) = self.entries.get(&stream) else {
            return Next::End;
        };
        if entry.reader.as_ref().map(|r| r.generation) != Some(generation) {
            return Next::End;
        }
        if entry.lost_through > cursor {
            return Next::Lost;
        }
        let from = self.events.partition_point(|e| e.seq <= cursor);
        let found = self
            .events
            .range(from..)
            .find(|e| e.stream == stream)
            .map(|e| (e.seq, e.frame.clone()));
        match found {
            Some((seq, frame)) => {
                let id = self.event_id(stream, seq);
                if let Some(entry) = self.entries.get_mut(&stream) {
                    entry.sent_through = entry.sent_through.max(seq);
                    entry.resumable = true;
                }
                Next::Event { id, seq, frame }
            }
            None if entry.finished => Next::End,
            None => Next::Wait,
        }
    }

    /// Adds `frame` to `stream`; its sequence number, or `None` when it is
    /// not kept (the session ended, or the stream is gone).
    pub(crate) fn append(&mut self, stream: StreamId, frame: Bytes) -> Option<u64> {
        if self.closed || self.entries.get(&stream).is_none_or(|e| e.retired) {
            return None;
        }
        let seq = self.next_seq();
        if let Some(entry) = self.entries.get_mut(&stream) {
            entry.last_seq = seq;
            entry.kept += 1;
        }
        self.bytes += frame.len();
        self.events.push_back(Event { seq, stream, frame });
        self.evict();
        Some(seq)
    }

    fn evict(&mut self) {
        let mut emptied = false;
        while self.events.len() > 1
            && (self.events.len() > self.limits.events || self.bytes > self.limits.bytes)
        {
            let Some(event) = self.events.pop_front() else {
                break;
            };
            self.bytes -= event.frame.len();
            if let Some(entry) = self.entries.get_mut(&event.stream) {
                entry.kept -= 1;
                entry.lost_through = entry.lost_through.max(event.seq);
                emptied |= entry.kept == 0;
            }
        }
        if emptied {
            self.prune();
        }
    }

    /// A reply stream's response is in: its readers end after sending it.
    pub(crate) fn finish(&mut self, stream: StreamId) {
        if let Some(entry) = self.entries.get_mut(&stream) {
            entry.finished = true;
        }
        self.prune();
    }

    /// A message no call names: to the newest standing stream being read,
    /// else to the one the client can come back to. False when there is
    /// none (the message is not kept).
    pub(crate) fn deliver(&mut self, frame: Bytes) -> bool {
        let read = self
            .entries
            .iter()
            .filter(|(_, e)| e.kind == Kind::Standing && !e.retired)
            .filter_map(|(id, e)| e.reader.as_ref().map(|r| (r.generation, *id)))
            .max()
            .map(|(_, id)| id);
        let target = read.or_else(|| {
            self.standing.filter(|s| {
                self.entries
                    .get(s)
                    .is_some_and(|e| e.resumable && !e.retired)
            })
        });
        match target {
            Some(stream) => self.append(stream, frame).is_some(),
            None => false,
        }
    }

    /// Whether event `seq` of `stream` waits for the connection reading
    /// it (a call's reply does not run ahead of its reader).
    pub(crate) fn awaits_reader(&self, stream: StreamId, seq: u64) -> bool {
        !self.closed
            && self
                .entries
                .get(&stream)
                .is_some_and(|e| e.reader.is_some() && e.sent_through < seq && e.lost_through < seq)
    }

    /// Whether a GET connection is open.
    pub(crate) fn has_reader(&self) -> bool {
        self.get_connections() > 0
    }

    /// The session ended: everything is dropped, readers end.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.events.clear();
        self.bytes = 0;
        self.entries.clear();
        self.standing = None;
    }

    /// Forgets the oldest idle streams beyond [`KEPT_IDLE`].
    fn prune(&mut self) {
        let standing = self.standing;
        let idle: Vec<StreamId> = self
            .entries
            .iter()
            .filter(|(id, e)| e.idle() && Some(**id) != standing)
            .map(|(id, _)| *id)
            .collect();
        if idle.len() > KEPT_IDLE {
            for id in &idle[..idle.len() - KEPT_IDLE] {
                self.entries.remove(id);
            }
        }
    }

    /// Streams remembered now (live or idle).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn limits(events: usize) -> StreamLimits {
        StreamLimits {
            events,
            bytes: 1 << 20,
            readers: 4,
        }
    }

    fn streams(events: usize) -> Streams<()> {
        Streams::new("t".into(), limits(events))
    }

    fn frame(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// Everything the reader sends until it would wait.
    fn drain(s: &mut Streams<()>, a: &mut Attached) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match s.next(a.stream, a.generation, a.cursor) {
                Next::Event { seq, frame, .. } => {
                    a.cursor = seq;
                    out.push(String::from_utf8(frame.to_vec()).unwrap());
                }
                _ => return out,
            }
        }
    }

    fn last_id(s: &Streams<()>, a: &Attached) -> String {
        s.event_id(a.stream, a.cursor)
    }

    #[test]
    fn a_resumed_stream_gets_what_it_missed_and_nothing_of_other_streams() {
        let mut s = streams(64);
        let mut get = s.open_standing(true, || Some(())).unwrap();
        assert!(get.priming.is_some());
        let mut reply = s.open_reply(false).unwrap();
        assert!(s.deliver(frame("a")));
        s.append(reply.stream, frame("r1")).unwrap();
        assert_eq!(drain(&mut s, &mut get), ["a"]);
        assert_eq!(drain(&mut s, &mut reply), ["r1"]);
        let seen = last_id(&s, &get);
        s.detach(get.stream, get.generation);
        // While nobody reads it, it keeps what comes for it.
        assert!(s.deliver(frame("b")));
        s.append(reply.stream, frame("r2")).unwrap();
        assert!(s.deliver(frame("c")));
        let mut back = s.resume(&seen, || Some(())).unwrap();
        assert_eq!(drain(&mut s, &mut back), ["b", "c"]);
        assert!(s.deliver(frame("d")));
        assert_eq!(drain(&mut s, &mut back), ["d"]);
        assert_eq!(drain(&mut s, &mut reply), ["r2"]);
    }

    #[test]
    fn a_reply_resumed_after_a_cut_ends_after_its_response() {
        let mut s = streams(64);
        let mut reply = s.open_reply(false).unwrap();
        s.append(reply.stream, frame("p1")).unwrap();
        assert_eq!(drain(&mut s, &mut reply), ["p1"]);
        let seen = last_id(&s, &reply);
        s.detach(reply.stream, reply.generation);
        s.append(reply.stream, frame("p2")).unwrap();
        s.append(reply.stream, frame("response")).unwrap();
        s.finish(reply.stream);
        let mut back = s.resume(&seen, || Some(())).unwrap();
        assert_eq!(drain(&mut s, &mut back), ["p2", "response"]);
        assert_eq!(s.next(back.stream, back.generation, back.cursor), Next::End);
        // Session traffic never goes to a reply stream.
        assert!(!s.deliver(frame("x")));
    }

    #[test]
    fn ids_are_unique_across_streams_and_name_their_stream() {
        let mut s = streams(1024);
        let mut get = s.open_standing(true, || Some(())).unwrap();
        let mut replies: Vec<Attached> = (0..3).map(|_| s.open_reply(true).unwrap()).collect();
        let mut ids = HashSet::new();
        for a in std::iter::once(&get).chain(replies.iter()) {
            assert!(ids.insert(a.priming.clone().unwrap()));
        }
        for i in 0..20 {
            s.deliver(frame(&i.to_string()));
            for r in &replies {
                s.append(r.stream, frame(&i.to_string()));
            }
        }
        for a in std::iter::once(&mut get).chain(replies.iter_mut()) {
            while let Next::Event { id, seq, .. } = s.next(a.stream, a.generation, a.cursor) {
                a.cursor = seq;
                assert_eq!(s.parse(&id), Some((a.stream, seq)));
                assert!(ids.insert(id), "duplicate id");
            }
        }
        assert_eq!(ids.len(), 4 + 20 * 4);
    }

    #[test]
    fn an_id_of_another_session_or_never_given_is_unknown() {
        let mut s = streams(8);
        let get = s.open_standing(true, || Some(())).unwrap();
        let id = get.priming.unwrap();
        let other = id.replacen('t', "u", 1);
        for bad in [
            other.as_str(),
            "garbage",
            "t-1",
            "t-1-2-3",
            "t-9-1",
            "t-1-99",
            "",
        ] {
            assert_eq!(s.resume(bad, || Some(())), Err(Refusal::Unknown), "{bad}");
        }
    }

    #[test]
    fn dropped_events_are_refused_as_gone_never_skipped() {
        let mut s = streams(3);
        let get = s.open_standing(true, || Some(())).unwrap();
        let primed = get.priming.clone().unwrap();
        s.detach(get.stream, get.generation);
        for i in 0..5 {
            assert!(s.deliver(frame(&i.to_string())));
        }
        assert_eq!(s.resume(&primed, || Some(())), Err(Refusal::Gone));
        // Retired: it takes no more, and stays refused.
        assert!(!s.deliver(frame("late")));
        assert_eq!(s.resume(&primed, || Some(())), Err(Refusal::Gone));
        // A new stream works as ever.
        assert!(s.open_standing(true, || Some(())).is_ok());
    }

    #[test]
    fn a_reader_that_falls_behind_the_buffer_stops() {
        let mut s = streams(2);
        let get = s.open_standing(false, || Some(())).unwrap();
        for i in 0..4 {
            s.deliver(frame(&i.to_string()));
        }
        assert_eq!(s.next(get.stream, get.generation, get.cursor), Next::Lost);
    }

    #[test]
    fn bytes_are_bounded_but_the_newest_event_is_kept() {
        let mut s: Streams<()> = Streams::new(
            "t".into(),
            StreamLimits {
                events: 100,
                bytes: 10,
                readers: 4,
            },
        );
        let mut get = s.open_standing(false, || Some(())).unwrap();
        s.deliver(frame("12345"));
        s.deliver(frame("67890"));
        assert_eq!(s.bytes, 10);
        s.deliver(frame("a-large-message"));
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.next(get.stream, get.generation, get.cursor), Next::Lost);
        get.cursor = s.seq - 1;
        assert_eq!(drain(&mut s, &mut get), ["a-large-message"]);
    }

    #[test]
    fn get_connections_are_capped_and_a_takeover_is_not_an_extra_one() {
        let mut s = streams(8);
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(s.open_standing(true, || Some(())).unwrap());
        }
        assert_eq!(
            s.open_standing(true, || Some(())),
            Err(Refusal::TooManyReaders)
        );
        // Resuming one that is (still) read replaces its reader.
        let id = open[0].priming.clone().unwrap();
        let again = s.resume(&id, || None).unwrap();
        assert_eq!(
            s.next(open[0].stream, open[0].generation, open[0].cursor),
            Next::End
        );
        // The replaced reader's late detach changes nothing.
        s.detach(open[0].stream, open[0].generation);
        assert_eq!(s.get_connections(), 4);
        s.detach(again.stream, again.generation);
        assert_eq!(s.get_connections(), 3);
        assert_eq!(s.open_standing(true, || None), Err(Refusal::NoSlot));
        assert!(s.open_standing(true, || Some(())).is_ok());
    }

    #[test]
    fn a_reply_waits_for_its_reader_only_while_one_reads_it() {
        let mut s = streams(8);
        let mut reply = s.open_reply(false).unwrap();
        let seq = s.append(reply.stream, frame("1")).unwrap();
        assert!(s.awaits_reader(reply.stream, seq));
        drain(&mut s, &mut reply);
        assert!(!s.awaits_reader(reply.stream, seq));
        let seq = s.append(reply.stream, frame("2")).unwrap();
        s.detach(reply.stream, reply.generation);
        assert!(!s.awaits_reader(reply.stream, seq));
    }

    #[test]
    fn idle_streams_are_forgotten_beyond_a_bound_and_then_gone() {
        let mut s = streams(8);
        let first = s.open_standing(true, || Some(())).unwrap();
        s.detach(first.stream, first.generation);
        for _ in 0..(KEPT_IDLE + 10) {
            let a = s.open_standing(true, || Some(())).unwrap();
            s.detach(a.stream, a.generation);
            let r = s.open_reply(false).unwrap();
            s.detach(r.stream, r.generation);
            s.finish(r.stream);
        }
        assert!(s.remembered() <= KEPT_IDLE + 1);
        assert_eq!(
            s.resume(first.priming.as_deref().unwrap(), || Some(())),
            Err(Refusal::Gone)
        );
    }

    #[test]
    fn closing_drops_everything() {
        let mut s = streams(8);
        let get = s.open_standing(true, || Some(())).unwrap();
        s.deliver(frame("a"));
        s.close();
        assert_eq!(s.next(get.stream, get.generation, get.cursor), Next::End);
        assert!(!s.deliver(frame("b")));
        assert_eq!(s.events.len(), 0);
        assert_eq!(s.open_standing(true, || Some(())), Err(Refusal::Closed));
    }
}
