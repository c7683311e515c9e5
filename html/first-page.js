/*
 * The first page of the rankings, imported as a JSON module: a module
 * script runs before the document's load event, so the rankings are in
 * the page when it loads, and a page dumped or printed then (chromium
 * --headless --dump-dom) shows them.  dashboard.js uses them when the
 * first page shown is the default rankings; when this import fails (a
 * 429, a browser without JSON modules) dashboard.js asks itself.
 */

import rankings from '/api/rankings?page=1&limit=20&sort=score'
    with { type: 'json' };

window.drFirstRankings = rankings;
