//! The standard `process_*` metrics, read from `/proc/self` at scrape time (Linux; elsewhere
//! they are left out): CPU seconds, resident and virtual memory, open descriptors and their
//! limit, start time.

use super::exposition::{Kind, Text};

/// Appends the process metrics that can be read.
pub fn render(out: &mut String) {
    let mut t = Text::new(out);
    let ticks = clock_ticks();
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // The fields after the command name, which may hold spaces and parentheses.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Numbered as proc(5) numbers them: state is field 3, so index = field - 3.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let cpu = (utime + stime) as f64 / ticks as f64;
        t.single("process_cpu_seconds_total", Kind::Counter, "User and system CPU time spent, seconds.", cpu);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    if let Some(rss) = kib("VmRSS:") {
        t.single("process_resident_memory_bytes", Kind::Gauge, "Resident memory, bytes.", rss * 1024);
    }
    if let Some(vm) = kib("VmSize:") {
        t.single("process_virtual_memory_bytes", Kind::Gauge, "Virtual memory, bytes.", vm * 1024);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is among them while it is read.
        let open = fds.count().saturating_sub(1) as u64;
        t.single("process_open_fds", Kind::Gauge, "Open file descriptors.", open);
    }
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        t.single("process_max_fds", Kind::Gauge, "The open-files limit (soft).", soft);
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok()));
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        let started = boot as f64 + start as f64 / ticks as f64;
        t.single(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time since the Unix epoch, seconds.",
            started,
        );
    }
}

/// Clock ticks per second; 100, Linux's `USER_HZ`, if the auxiliary vector cannot be read.
fn clock_ticks() -> u64 {
    std::fs::read("/proc/self/auxv").ok().and_then(|a| clock_ticks_in(&a)).unwrap_or(100)
}

/// `AT_CLKTCK` from the auxiliary vector the kernel gave the process.
fn clock_ticks_in(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |c: &[u8]| {
        let mut b = [0u8; WORD];
        b.copy_from_slice(c);
        usize::from_ne_bytes(b) as u64
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|(key, _)| *key == AT_CLKTCK)
        .map(|(_, v)| v)
        .filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_ticks_come_from_the_auxiliary_vector() {
        // USER_HZ is 100 on every architecture this is built for.
        let auxv = std::fs::read("/proc/self/auxv").unwrap();
        assert_eq!(super::clock_ticks_in(&auxv), Some(100));
        assert_eq!(super::clock_ticks_in(&[]), None);
    }
}
