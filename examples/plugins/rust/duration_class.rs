//! duration_class: the example enrich plugin in Rust. An event with a
//! measurement duration (int or float) gets metadata duration_class = fast
//! (duration < fast_ns, default 1000000), slow (duration >= slow_ns, default
//! 100000000) or normal. Events without duration are unchanged.
#![no_std]

use core::sync::atomic::{AtomicI64, Ordering};
use snakepipe::{Config, Event, Number, Patch};

static FAST_NS: AtomicI64 = AtomicI64::new(1_000_000);
static SLOW_NS: AtomicI64 = AtomicI64::new(100_000_000);

fn init(c: &Config) -> Result<(), i32> {
    c.only(&[b"fast_ns", b"slow_ns"])?;
    FAST_NS.store(c.i64(b"fast_ns", 1_000_000)?, Ordering::Relaxed);
    SLOW_NS.store(c.i64(b"slow_ns", 100_000_000)?, Ordering::Relaxed);
    Ok(())
}

fn enrich(e: &Event, p: &mut Patch) {
    let (fast_ns, slow_ns) = (FAST_NS.load(Ordering::Relaxed), SLOW_NS.load(Ordering::Relaxed));
    let (fast, slow) = match e.number(b"duration") {
        Some(Number::Int(d)) => (d < fast_ns, d >= slow_ns),
        Some(Number::Float(d)) => (d < fast_ns as f64, d >= slow_ns as f64),
        None => return,
    };
    let class: &[u8] = if fast {
        b"fast"
    } else if slow {
        b"slow"
    } else {
        b"normal"
    };
    p.set_metadata(b"duration_class", class);
}

// The enricher reads only the duration measurement: the host then sends each
// record without its metadata and host context (less to encode).
// Its patch still applies to the whole event; it only cannot see the
// metadata the event already has.
snakepipe::fields!(snakepipe::FIELDS_MEASUREMENTS);
snakepipe::init!(init);
snakepipe::enrich!(enrich);
