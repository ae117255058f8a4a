// A statsd backend for snakepipe's tests: on every flush it prints what the
// daemon parsed (counters, timers, timer counts, gauges, sets) as one JSON
// line on stdout, prefixed with SNAKEPIPE_FLUSH, so the Go test can read it
// exactly instead of scraping the console backend's util.inspect output.
'use strict';

exports.init = function (startupTime, config, events) {
  events.on('flush', function (timestamp, metrics) {
    const sets = {};
    for (const key in metrics.sets) {
      sets[key] = metrics.sets[key].values();
    }
    process.stdout.write('SNAKEPIPE_FLUSH ' + JSON.stringify({
      counters: metrics.counters,
      timers: metrics.timers,
      timer_counters: metrics.timer_counters,
      gauges: metrics.gauges,
      sets: sets,
    }) + '\n');
  });
  return true;
};
