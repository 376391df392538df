#!/usr/bin/env node
// Conformance scenarios written with amqplib (promise API).
//
//     node amqplib_scenarios.js URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.
'use strict';
//
// The entry point: the scenarios live in topic modules that register them on require, in the
// order of the report (topology, messaging, publishing, errors, then the queue features of
// issue 6: ttl_limits, dead_letter, consumers). Helpers: amqplib_common.js.

const { main } = require('./amqplib_common');

require('./amqplib_topology');
require('./amqplib_messaging');
require('./amqplib_publishing');
require('./amqplib_errors');
require('./amqplib_claims');
require('./amqplib_fairness');
require('./amqplib_ttl_limits');
require('./amqplib_dead_letter');
require('./amqplib_x_death');
require('./amqplib_consumers');
require('./amqplib_compat');

process.on('unhandledRejection', (e) => { console.error('unhandled rejection:', e); });
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
