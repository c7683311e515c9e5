/*
 * The Domain Runner dashboard: plain JavaScript over the module's own
 * JSON API (README, "Endpoints"), with no framework and no build step.
 * Each page is a route of the location hash:
 *
 *   #/?page=&search=&sort=&limit=   the rankings
 *   #/domain/NAME            one domain: its memory score over the runs,
 *                            each model's verdict, consensus and drift
 *   #/categories             the categories
 *   #/operator               queue, runs and providers' health; runs and
 *                            provider keys need an admin key
 *
 * An admin key pasted on the operator page is kept in sessionStorage (it
 * is gone when the tab closes) and sent as X-API-Key with every request,
 * so that the pages count against the key's limits instead of the
 * anonymous ones.  A request that fails is shown where its data would
 * have been: a 429 with the time to wait, a 503 as the service being
 * unavailable, and so on.
 */

'use strict';

(function () {

const KEY_ITEM = 'domain-runner.admin-key';
const RUNS_ITEM = 'domain-runner.watched-runs';
const PAGE_SIZE = 20;
const RUN_POLL_MS = 5000;
const KEY_FORMAT = /^dr_[a-z0-9]{8}_[A-Za-z0-9]{32}$/;

/* timers of the page shown: cleared when another is shown */
let pageTimers = [];


/* ------------------------------------------------------------------ */
/* the DOM */

function append(parent, kids) {
    for (const k of kids.flat(Infinity)) {
        if (k === null || k === undefined || k === false) {
            continue;
        }
        parent.append(k instanceof Node ? k : String(k));
    }
    return parent;
}

function setProps(e, props) {
    for (const [k, v] of Object.entries(props || {})) {
        if (v === null || v === undefined || v === false) {
            continue;
        }
        if (k === 'text') {
            e.textContent = v;
        } else if (k.startsWith('on')) {
            e.addEventListener(k.slice(2), v);
        } else {
            e.setAttribute(k, v === true ? '' : v);
        }
    }
    return e;
}

/* el('a', {href: '#/', class: 'x'}, 'text', child, ...) */
function el(tag, props, ...kids) {
    return append(setProps(document.createElement(tag), props), kids);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, props, ...kids) {
    return append(setProps(document.createElementNS(SVG_NS, tag), props),
                  kids);
}


/* ------------------------------------------------------------------ */
/* the API */

class ApiError extends Error {
    constructor(status, body, retryAfter, message) {
        super(message || (body && (body.detail || body.message))
              || 'HTTP ' + status);
        this.status = status;
        this.body = body || {};
        this.retryAfter = retryAfter;
    }
}

function adminKey() {
    try {
        return sessionStorage.getItem(KEY_ITEM);
    } catch (e) {
        return null;
    }
}

/* the decoded JSON answer, or an ApiError */
async function api(path, options) {
    const opt = options || {};
    const headers = { Accept: 'application/json' };
    const key = adminKey();
    let res;

    if (key) {
        headers['X-API-Key'] = key;
    }
    if (opt.body !== undefined) {
        headers['Content-Type'] = 'application/json';
    }

    try {
        res = await fetch(path, {
            method: opt.method || 'GET',
            headers: headers,
            body: opt.body === undefined ? undefined
                                         : JSON.stringify(opt.body),
        });
    } catch (e) {
        throw new ApiError(0, null, null,
                           'The API cannot be reached (' + e.message + ').');
    }

    let body = null;
    try {
        body = await res.json();
    } catch (e) {
        body = null;
    }

    if (!res.ok) {
        let retry = body && Number.isInteger(body.retry_after)
                    ? body.retry_after
                    : parseInt(res.headers.get('Retry-After') || '', 10);
        throw new ApiError(res.status, body,
                           Number.isFinite(retry) ? retry : null);
    }
    if (body === null) {
        throw new ApiError(res.status, null, null,
                           'The API answered something that is not JSON.');
    }
    return body;
}

/* what went wrong, in words for the person looking at the page */
function describe(err) {
    const said = err.body.detail || err.body.message || '';
    const key = adminKey();

    switch (err.status) {
    case 0:
        return err.message;
    case 429:
        return 'Too many requests: the rate limit of '
            + (key ? 'your key' : 'visitors without a key')
            + ' is used up for now.'
            + (err.retryAfter !== null
               ? ' Try again in ' + err.retryAfter + ' s.' : '')
            + (key ? '' : ' An API key raises the limit.');
    case 503:
        return 'The service is unavailable for the moment'
            + (said ? ' (' + said + ')' : '')
            + '. It recovers by itself: try again shortly.';
    case 401:
        return 'The API key was refused' + (said ? ': ' + said : '.')
            + ' Paste a valid admin key on the operator page, or forget it'
            + ' to use the public pages without one.';
    case 403:
        return 'This needs an admin key' + (said ? ': ' + said : '.');
    case 404:
        return 'Not found' + (said ? ': ' + said : '.');
    default:
        return 'The API answered ' + err.status
            + (said ? ': ' + said : '.');
    }
}

/*
 * An error where the data would have been.  A 429 counts down to the
 * time the limit allows another request, then offers to try again.
 */
function errorBox(err, retry) {
    const text = el('span', { class: 'error-text', text: describe(err) });
    const box = el('div', { class: 'error', role: 'alert',
                            'data-status': String(err.status) }, text);

    if (!retry) {
        return box;
    }

    const button = el('button', { type: 'button', onclick: retry },
                      'Try again');
    box.append(' ', button);

    if (err.status === 429 && err.retryAfter > 0) {
        let left = err.retryAfter;
        button.disabled = true;
        const timer = setInterval(function () {
            left--;
            if (left <= 0 || !box.isConnected) {
                clearInterval(timer);
                button.disabled = false;
                text.textContent = describe(Object.assign(err,
                                                          { retryAfter: 0 }))
                    .replace(/ Try again in 0 s\./, ' You may try again.');
                return;
            }
            text.textContent = describe(Object.assign(err,
                                                      { retryAfter: left }));
        }, 1000);
        pageTimers.push(timer);
    }
    return box;
}

/*
 * Fills a section from a request: "Loading" meanwhile, render(data) on
 * success, an error box with a way to try again on failure.
 */
async function fill(section, load, render) {
    section.replaceChildren(el('p', { class: 'loading' }, 'Loading…'));
    section.setAttribute('aria-busy', 'true');
    try {
        const data = await load();
        section.replaceChildren();
        append(section, [render(data)]);
    } catch (err) {
        if (!(err instanceof ApiError)) {
            throw err;
        }
        section.replaceChildren(errorBox(err, function () {
            fill(section, load, render);
        }));
    } finally {
        section.removeAttribute('aria-busy');
    }
}


/* ------------------------------------------------------------------ */
/* formats */

function num(v, digits) {
    return typeof v === 'number' && Number.isFinite(v)
           ? v.toFixed(digits === undefined ? 1 : digits) : '–';
}

/*
 * An ISO 8601 time as "2025-01-31 14:05 UTC" (no locale, no surprise),
 * with the seconds where runs may be minutes apart
 */
function when(iso, seconds) {
    if (!iso) {
        return '–';
    }
    const d = new Date(iso);
    if (isNaN(d)) {
        return String(iso);
    }
    return d.toISOString().slice(0, seconds ? 19 : 16).replace('T', ' ')
        + ' UTC';
}

function domainLink(name) {
    return el('a', { href: '#/domain/' + encodeURIComponent(name),
                     class: 'domain' }, name);
}

/* a horizontal bar of value out of max, in SVG */
function bar(value, max, cls) {
    const pct = Math.max(0, Math.min(100, 100 * (value || 0) / (max || 100)));
    return svg('svg', { class: 'bar ' + (cls || ''), viewBox: '0 0 100 8',
                        width: '90', height: '8', preserveAspectRatio: 'none',
                        'aria-hidden': 'true' },
               svg('rect', { class: 'bar-bg', width: '100', height: '8',
                             rx: '3' }),
               svg('rect', { class: 'bar-fill', width: pct.toFixed(1),
                             height: '8', rx: '3' }));
}

function trendClass(trend) {
    const s = String(trend || '');
    return s.startsWith('+') ? 'up' : s.startsWith('-') ? 'down' : 'flat';
}

function table(head, rows, cls) {
    return el('table', { class: cls || '' },
        el('thead', null, el('tr', null,
            head.map(function (h) { return el('th', { scope: 'col' }, h); }))),
        el('tbody', null, rows));
}

function card(label, value, note) {
    return el('div', { class: 'card' },
              el('div', { class: 'card-label' }, label),
              el('div', { class: 'card-value' }, value),
              note ? el('div', { class: 'card-note' }, note) : null);
}


/* ------------------------------------------------------------------ */
/* the rankings */

function showRankings(view, query) {
    const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
    const limit = Math.min(100, Math.max(1,
        parseInt(query.get('limit') || String(PAGE_SIZE), 10) || PAGE_SIZE));
    const search = (query.get('search') || '').trim().slice(0, 100);
    const sort = ['score', 'consensus', 'trend', 'domain']
        .includes(query.get('sort')) ? query.get('sort') : 'score';

    const stats = el('section', { id: 'stats', class: 'stats' });
    const list = el('section', { id: 'rankings' });

    const input = el('input', { type: 'search', name: 'search',
                                value: search, maxlength: '100',
                                placeholder: 'Search domains',
                                'aria-label': 'Search domains' });
    const select = el('select', { name: 'sort', 'aria-label': 'Sort by' },
        [['score', 'Score'], ['consensus', 'Consensus'], ['trend', 'Trend'],
         ['domain', 'Domain']].map(function (o) {
            return el('option', { value: o[0], selected: o[0] === sort },
                      'Sort by ' + o[1].toLowerCase());
        }));
    const form = el('form', { class: 'toolbar', role: 'search',
                              onsubmit: function (ev) {
        ev.preventDefault();
        go('#/' + queryString({ search: input.value.trim(),
                                sort: select.value, page: 1,
                                limit: limit }));
    } }, input, select, el('button', { type: 'submit' }, 'Search'));
    select.addEventListener('change', function () {
        form.requestSubmit();
    });

    view.replaceChildren(el('h1', null, 'Rankings'), stats, form, list);

    fill(stats, function () { return api('/api/stats'); }, renderStats);

    let path = '/api/rankings?page=' + page + '&limit=' + limit
        + '&sort=' + sort;
    if (search) {
        path += '&search=' + encodeURIComponent(search);
    }
    /* the first page of the default rankings came with the page */
    const first = window.drFirstRankings;
    window.drFirstRankings = undefined;
    const preloaded = first && page === 1 && !search && sort === 'score'
        && limit === PAGE_SIZE;
    fill(list, function () {
        return preloaded ? first : api(path);
    }, function (data) {
        return renderRankings(data, { page: page, search: search,
                                      sort: sort, limit: limit });
    });
}

function renderStats(data) {
    const s = data.platform_stats || {};
    return el('div', { class: 'cards' },
        card('Domains tracked', String(s.total_domains ?? '–')),
        card('Mean memory score', num(s.average_memory_score)),
        card('Answers stored', String(s.total_ai_responses ?? '–')),
        card('Critical risk', String(s.critical_risk_domains ?? '–')),
        card('Last updated', when(s.last_updated)));
}

function renderRankings(data, at) {
    const items = data.domains || [];
    const withUpdated = items.some(function (d) {
        return 'lastUpdated' in d;
    });

    if (items.length === 0) {
        return el('p', { class: 'empty' }, at.search
            ? 'No scored domain matches "' + at.search + '".'
            : 'No domain has scores yet: start a run on the operator page.');
    }

    const head = ['#', 'Domain', 'Score', 'Trend', 'Models + / = / −',
                  'Freshness'];
    if (withUpdated) {
        head.push('Last updated');
    }
    const rows = items.map(function (d, i) {
        return el('tr', null,
            el('td', { class: 'num' }, (at.page - 1) * at.limit + i + 1),
            el('td', null, domainLink(d.domain)),
            el('td', { class: 'score' }, bar(d.score), ' ',
               el('span', { class: 'num' }, num(d.score))),
            el('td', { class: 'trend ' + trendClass(d.trend) }, d.trend),
            el('td', { class: 'models' },
               el('span', { class: 'pos', title: 'positive' },
                  d.modelsPositive), ' / ',
               el('span', { class: 'neu', title: 'neutral' },
                  d.modelsNeutral), ' / ',
               el('span', { class: 'neg', title: 'negative' },
                  d.modelsNegative)),
            el('td', null, el('span', { class: 'fresh ' + d.dataFreshness },
                              d.dataFreshness)),
            withUpdated ? el('td', null, when(d.lastUpdated)) : null);
    });

    const pages = Math.max(1, data.totalPages || 1);
    const link = function (p, label) {
        return p < 1 || p > pages
            ? el('span', { class: 'disabled' }, label)
            : el('a', { href: '#/' + queryString({ search: at.search,
                                                   sort: at.sort, page: p,
                                                   limit: at.limit }),
                        rel: p < at.page ? 'prev' : 'next' }, label);
    };

    return [
        table(head, rows, 'rankings'),
        el('nav', { class: 'pager', 'aria-label': 'Pages' },
           link(at.page - 1, '← Previous'),
           el('span', null, 'Page ' + (data.currentPage || at.page) + ' of '
              + pages + ' (' + data.totalDomains + ' domains)'),
           link(at.page + 1, 'Next →')),
    ];
}


/* ------------------------------------------------------------------ */
/* one domain */

function showDomain(view, name) {
    const summary = el('section', { id: 'summary' });
    const history = el('section', { id: 'history' });
    const models = el('section', { id: 'models' });
    const drift = el('section', { id: 'drift' });
    const enc = encodeURIComponent(name);

    view.replaceChildren(
        el('p', { class: 'crumbs' }, el('a', { href: '#/' }, '← Rankings')),
        el('h1', null, name),
        summary,
        el('h2', null, 'Memory score over the runs'), history,
        el('div', { class: 'columns' },
           el('div', null, el('h2', null, 'Each model\'s verdict'), models),
           el('div', null, el('h2', null, 'Drift'), drift)));

    fill(summary, function () {
        return api('/api/domains/' + enc + '/public?include_alerts=true');
    }, renderProfile);

    /* one request feeds the chart and the drift panel; a retry of
       either asks again */
    const first = api('/api/drift/' + enc);
    let users = 2;
    const loadDrift = function () {
        if (users > 0) {
            users--;
            return first;
        }
        return api('/api/drift/' + enc);
    };
    fill(history, loadDrift, function (d) {
        return renderHistory(d.historical_trend || []);
    });
    fill(drift, loadDrift, renderDrift);

    fill(models, function () { return api('/api/consensus/' + enc); },
         renderConsensus);
}

function renderProfile(p) {
    const ai = p.ai_intelligence || {};
    const biz = p.business_profile || {};
    const fresh = p.data_freshness || {};
    const direction = ai.trend_direction;
    const themes = Array.isArray(biz.key_themes) ? biz.key_themes : [];
    const alerts = Array.isArray(p.alerts) ? p.alerts : [];

    return [
        el('div', { class: 'cards' },
           card('Memory score', num(ai.memory_score),
                'share of answers that name the brand'),
           card('AI consensus', num(ai.ai_consensus),
                'how alike the models\' answers are'),
           card('Cohesion', num(ai.cohesion),
                'models in the majority tone'),
           card('Trend', el('span', { class: 'trend '
                                      + trendClass(ai.trend) }, ai.trend),
                direction ? direction : 'since the previous run'),
           card('Models tracking', String(ai.models_tracking ?? '–'),
                (ai.response_count ?? '–') + ' answers'),
           card('Last updated', when(fresh.last_updated || p.updated_at),
                fresh.status || null)),
        el('dl', { class: 'profile' },
           el('dt', null, 'Category'), el('dd', null, biz.category || '–'),
           el('dt', null, 'Market position'),
           el('dd', null, biz.market_position || '–'),
           el('dt', null, 'Reputation'),
           el('dd', null, biz.reputation || '–'),
           el('dt', null, 'Key themes'),
           el('dd', null, themes.length ? themes.join(', ') : '–')),
        alerts.length
            ? el('ul', { class: 'alerts' }, alerts.map(function (a) {
                return el('li', { class: 'alert ' + (a.severity || '') },
                          el('strong', null, a.severity || 'alert'), ' ',
                          a.message || a.type);
            }))
            : null,
    ];
}

/*
 * The chart: memory score (and drift, as a percentage) of each scored
 * run, oldest first, on a time axis; an SVG drawn here, no library.
 */
function chart(points) {
    const W = 720, H = 240, L = 44, R = 16, T = 14, B = 38;
    const times = points.map(function (p) { return Date.parse(p.date); });
    const t0 = Math.min.apply(null, times);
    const t1 = Math.max.apply(null, times);
    const x = function (i) {
        return t1 > t0 ? L + (W - L - R) * (times[i] - t0) / (t1 - t0)
                       : L + (W - L - R) / 2;
    };
    const y = function (v) { return T + (H - T - B) * (1 - v / 100); };
    const line = function (f) {
        return points.map(function (p, i) {
            return (i ? 'L' : 'M') + x(i).toFixed(1) + ' '
                + y(f(p)).toFixed(1);
        }).join(' ');
    };

    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H,
                              class: 'chart', role: 'img',
                              'aria-label': 'Memory score of '
                                  + points.length + ' runs' });
    root.append(svg('title', null, 'Memory score over the runs'));

    for (const v of [0, 25, 50, 75, 100]) {
        root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v),
                                  class: 'grid' }),
                    svg('text', { x: L - 6, y: y(v) + 4,
                                  class: 'axis', 'text-anchor': 'end' },
                        String(v)));
    }

    /* runs within a day of each other are told apart by their seconds */
    const close = t1 - t0 < 86400000;
    const labelled = points.length > 1 ? [0, points.length - 1] : [0];
    for (const i of labelled) {
        root.append(svg('text', { x: x(i), y: H - 12, class: 'axis',
                                  'text-anchor': points.length > 1
                                      ? (i ? 'end' : 'start') : 'middle' },
                        when(points[i].date, close)));
    }

    root.append(svg('path', { d: line(function (p) {
        return 100 * (p.drift_score || 0);
    }), class: 'line-drift' }));
    root.append(svg('path', { d: line(function (p) {
        return p.memory_score;
    }), class: 'line-memory' }));

    points.forEach(function (p, i) {
        root.append(svg('circle', { cx: x(i), cy: y(p.memory_score), r: 4,
                                    class: 'dot-memory' },
            svg('title', null, when(p.date, true) + ': memory '
                + num(p.memory_score) + ', drift '
                + num(p.drift_score, 2))));
    });
    return root;
}

function renderHistory(points) {
    if (points.length === 0) {
        return el('p', { class: 'empty' }, 'No scored run yet.');
    }
    return [
        chart(points),
        el('p', { class: 'legend' },
           el('span', { class: 'key-memory' }, 'memory score'), ' ',
           el('span', { class: 'key-drift' }, 'drift × 100'), ' — ',
           points.length + (points.length === 1 ? ' run' : ' runs')),
    ];
}

function renderConsensus(data) {
    const c = data.consensus || {};
    const agreement = c.model_agreement || {};
    const divergent = new Set(c.divergent_models || []);
    const names = Object.keys(agreement).sort(function (a, b) {
        return agreement[b] - agreement[a] || a.localeCompare(b);
    });

    const head = el('p', { class: 'consensus' },
        'Consensus ', el('strong', null, num(c.consensus_score)),
        ' (' + (c.agreement_level || '–') + ' agreement) among '
        + (c.total_models ?? names.length) + ' models.');

    if (names.length === 0) {
        return [head, el('p', { class: 'empty' },
                         'No model answered in the latest run.')];
    }

    const rows = names.map(function (m) {
        const off = divergent.has(m);
        return el('tr', { class: off ? 'divergent' : '' },
            el('td', null, m),
            el('td', { class: 'score' }, bar(agreement[m]), ' ',
               el('span', { class: 'num' }, num(agreement[m]))),
            el('td', null, off ? 'diverges from the others'
                               : 'agrees with the others'));
    });
    return [head, table(['Model', 'Agreement', 'Verdict'], rows, 'models')];
}

function renderDrift(data) {
    const d = data.drift || {};
    const runs = (data.historical_trend || []).slice(-8).reverse();
    return [
        el('div', { class: 'cards' },
           card('Drift score', num(d.drift_score, 2),
                'answers changed since the previous run (0 to 1)'),
           card('Severity', d.severity || '–'),
           card('Direction', d.drift_direction || '–'),
           card('Runs', String(d.periods ?? runs.length))),
        runs.length ? table(['Run scored', 'Memory', 'Drift'],
            runs.map(function (p) {
                return el('tr', null, el('td', null, when(p.date, true)),
                          el('td', { class: 'num' }, num(p.memory_score)),
                          el('td', { class: 'num' }, num(p.drift_score, 2)));
            }), 'runs') : null,
    ];
}


/* ------------------------------------------------------------------ */
/* categories */

function showCategories(view) {
    const list = el('section', { id: 'categories' });
    view.replaceChildren(el('h1', null, 'Categories'), list);
    fill(list, function () { return api('/api/categories'); }, function (d) {
        const cats = d.categories || [];
        if (cats.length === 0) {
            return el('p', { class: 'empty' }, 'No category yet.');
        }
        return table(['Category', 'Domains', 'Mean score', 'Top domains'],
            cats.map(function (c) {
                const top = c.topDomains || [];
                return el('tr', null,
                    el('td', null, c.name),
                    el('td', { class: 'num' }, c.domainCount),
                    el('td', { class: 'score' },
                       c.averageScore === null ? 'not scored yet'
                       : [bar(c.averageScore), ' ',
                          el('span', { class: 'num' },
                             num(c.averageScore))]),
                    el('td', null, top.map(function (n, i) {
                        return [i ? ', ' : '', domainLink(n)];
                    })));
            }), 'categories');
    });
}


/* ------------------------------------------------------------------ */
/* the operator's page */

function watchedRuns() {
    try {
        const v = JSON.parse(sessionStorage.getItem(RUNS_ITEM) || '[]');
        return Array.isArray(v) ? v.filter(Number.isInteger) : [];
    } catch (e) {
        return [];
    }
}

function setWatchedRuns(ids) {
    sessionStorage.setItem(RUNS_ITEM, JSON.stringify(
        Array.from(new Set(ids)).sort(function (a, b) { return b - a; })
            .slice(0, 20)));
}

function showOperator(view) {
    const keyPanel = el('section', { id: 'key' });
    const queue = el('section', { id: 'queue' });
    const health = el('section', { id: 'providers-health' });
    const runs = el('section', { id: 'runs' });
    const keys = el('section', { id: 'provider-keys' });

    view.replaceChildren(el('h1', null, 'Operator'), keyPanel,
        el('h2', null, 'Queue'), queue,
        el('h2', null, 'Runs'), runs,
        el('h2', null, 'Providers\' health (last 24 hours)'), health,
        el('h2', null, 'Provider keys and circuit breakers'), keys);

    renderKeyPanel(keyPanel);
    fill(queue, function () { return api('/readyz'); }, renderQueue);
    fill(health, function () { return api('/api/providers/health'); },
         renderHealth);

    if (!adminKey()) {
        const need = 'Paste an admin key above to see and start runs.';
        runs.replaceChildren(el('p', { class: 'empty' }, need));
        keys.replaceChildren(el('p', { class: 'empty' },
            'Paste an admin key above to see the provider keys\' buckets.'));
        return;
    }

    renderRuns(runs);
    fill(keys, function () { return api('/admin/providers'); },
         renderProviderKeys);
}

function renderKeyPanel(panel) {
    const key = adminKey();
    if (key) {
        panel.replaceChildren(el('p', null,
            'Using the admin key ', el('code', null, key.slice(0, 12) + '…'),
            ' for every request of this tab (kept in this tab only). ',
            el('button', { type: 'button', onclick: function () {
                sessionStorage.removeItem(KEY_ITEM);
                route();
            } }, 'Forget the key')));
        return;
    }

    const input = el('input', { type: 'password', name: 'key',
                                autocomplete: 'off', spellcheck: 'false',
                                placeholder: 'dr_xxxxxxxx_…',
                                'aria-label': 'Admin API key' });
    const note = el('p', { class: 'hint' },
        'The key stays in this browser tab (sessionStorage) and is sent as '
        + 'X-API-Key. The public pages work without one.');
    const form = el('form', { class: 'toolbar', onsubmit: function (ev) {
        ev.preventDefault();
        const v = input.value.trim();
        if (!KEY_FORMAT.test(v)) {
            note.className = 'error';
            note.textContent = 'That is not a key: keys look like '
                + 'dr_ followed by 8 letters or digits, _ and 32 more.';
            return;
        }
        sessionStorage.setItem(KEY_ITEM, v);
        route();
    } }, input, el('button', { type: 'submit' }, 'Use this key'));
    panel.replaceChildren(form, note);
}

function renderQueue(r) {
    const q = r.queue;
    const p = r.providers;
    const open = p && Array.isArray(p.open_breakers) ? p.open_breakers : [];
    return el('div', { class: 'cards' },
        card('Database', r.database || '–', r.status),
        q ? [card('Queued', String(q.queued)), card('Leased', String(q.leased)),
             card('Failed, to retry', String(q.failed)),
             card('Dead', String(q.dead))]
          : card('Queue', '–', 'this node does not crawl'),
        p ? card('Providers usable', p.usable + ' of ' + p.configured,
                 open.length ? 'breaker open: ' + open.join(', ')
                             : 'no breaker open')
          : null);
}

function renderHealth(d) {
    const ps = d.providers || [];
    if (ps.length === 0) {
        return el('p', { class: 'empty' }, 'No provider is configured.');
    }
    return table(['Provider', 'Models', 'Active', 'Calls', 'Errors',
                  'Error rate', 'Breaker', 'p50 latency'],
        ps.map(function (p) {
            return el('tr', { class: p.breaker_state === 'open'
                                     ? 'divergent' : '' },
                el('td', null, p.provider),
                el('td', null, (p.models || []).join(', ')),
                el('td', null, p.active ? 'yes' : 'no'),
                el('td', { class: 'num' }, p.calls),
                el('td', { class: 'num' }, p.errors),
                el('td', { class: 'num' }, num(100 * p.error_rate) + '%'),
                el('td', null, p.breaker_state || 'unknown'),
                el('td', { class: 'num' }, p.p50_latency_ms === null ? '–'
                   : num(p.p50_latency_ms, 0) + ' ms'));
        }), 'health');
}

function renderProviderKeys(d) {
    return table(['Provider', 'rpm', 'Keys (requests / tokens available)',
                  'Breaker'],
        (d.providers || []).map(function (p) {
            const b = p.breaker || {};
            return el('tr', null,
                el('td', null, p.name),
                el('td', { class: 'num' }, p.rpm),
                el('td', null, (p.keys || []).map(function (k, i) {
                    return [i ? ', ' : '', el('code', null, k.key), ' ',
                            String(k.requests_available ?? '–'), ' / ',
                            String(k.tokens_available ?? '–')];
                })),
                el('td', null, (b.state || '–')
                   + (b.state === 'half_open' || b.state === 'open'
                      ? ' (' + (b.failures_in_a_row ?? 0)
                        + ' failures in a row)' : '')));
        }), 'keys');
}

function renderRuns(section) {
    const list = el('div', { id: 'run-list' });
    const domains = el('input', { type: 'text', name: 'domains',
        placeholder: 'domains, comma separated (empty: every active one)',
        'aria-label': 'Domains of the new run' });
    const runId = el('input', { type: 'number', name: 'run', min: '1',
        placeholder: 'run id', 'aria-label': 'Run id to watch' });
    const status = el('div', { class: 'form-status', role: 'status' });

    const start = el('form', { class: 'toolbar', onsubmit: async function (ev) {
        ev.preventDefault();
        const names = domains.value.split(/[\s,]+/).filter(Boolean);
        status.replaceChildren(el('p', { class: 'loading' }, 'Starting…'));
        try {
            const r = await api('/admin/runs', { method: 'POST',
                body: names.length ? { domains: names } : {} });
            setWatchedRuns([r.run_id].concat(watchedRuns()));
            status.replaceChildren(el('p', null, 'Run ' + r.run_id
                                      + ' queued with ' + r.jobs + ' jobs.'));
            domains.value = '';
            refresh();
        } catch (err) {
            if (!(err instanceof ApiError)) {
                throw err;
            }
            status.replaceChildren(errorBox(err));
        }
    } }, domains, el('button', { type: 'submit' }, 'Start a run'));

    const watch = el('form', { class: 'toolbar', onsubmit: function (ev) {
        ev.preventDefault();
        const id = parseInt(runId.value, 10);
        if (id > 0) {
            setWatchedRuns([id].concat(watchedRuns()));
            runId.value = '';
            refresh();
        }
    } }, runId, el('button', { type: 'submit' }, 'Watch a run'));

    section.replaceChildren(start, watch, status, list);

    let timer = null;
    async function refresh() {
        clearTimeout(timer);
        const ids = watchedRuns();
        if (ids.length === 0) {
            list.replaceChildren(el('p', { class: 'empty' },
                'No run watched in this tab: start one, or watch one by '
                + 'its id.'));
            return;
        }
        const rows = await Promise.all(ids.map(function (id) {
            return api('/admin/runs/' + id).then(function (r) {
                return { id: id, run: r };
            }, function (err) {
                if (!(err instanceof ApiError)) {
                    throw err;
                }
                return { id: id, error: err };
            });
        }));
        if (!section.isConnected) {
            return;
        }
        list.replaceChildren(table(['Run', 'Status', 'Progress', 'Done',
                                    'Failed', 'Dead', 'In flight', 'Cost',
                                    'ETA', ''],
            rows.map(runRow), 'runs'));
        if (rows.some(function (r) {
            return r.error ? r.error.status === 429
                           : r.run.status !== 'done';
        })) {
            timer = setTimeout(refresh, RUN_POLL_MS);
            pageTimers.push(timer);
        }
    }
    refresh();
}

function runRow(r) {
    const forget = el('button', { type: 'button', class: 'link',
                                  onclick: function () {
        setWatchedRuns(watchedRuns().filter(function (i) {
            return i !== r.id;
        }));
        route();
    } }, 'stop watching');

    if (r.error) {
        return el('tr', null, el('td', { class: 'num' }, r.id),
                  el('td', { colspan: '8' }, errorBox(r.error)),
                  el('td', null, forget));
    }
    const p = r.run;
    const ended = (p.done || 0) + (p.dead || 0);
    return el('tr', null,
        el('td', { class: 'num' }, p.run_id),
        el('td', null, p.status),
        el('td', { class: 'score' }, bar(ended, p.total || 1, 'progress'), ' ',
           el('span', { class: 'num' }, ended + ' / ' + p.total)),
        el('td', { class: 'num' }, p.done),
        el('td', { class: 'num' }, p.failed),
        el('td', { class: 'num' }, p.dead),
        el('td', { class: 'num' }, p.in_flight),
        el('td', { class: 'num' }, '$' + num(Number(p.cost), 4)),
        el('td', { class: 'num' }, p.eta_seconds === null
           || p.eta_seconds === undefined ? '–' : p.eta_seconds + ' s'),
        el('td', null, forget));
}


/* ------------------------------------------------------------------ */
/* routing */

function queryString(o) {
    const q = new URLSearchParams();
    if (o.search) {
        q.set('search', o.search);
    }
    if (o.sort && o.sort !== 'score') {
        q.set('sort', o.sort);
    }
    if (o.page && o.page > 1) {
        q.set('page', String(o.page));
    }
    if (o.limit && o.limit !== PAGE_SIZE) {
        q.set('limit', String(o.limit));
    }
    const s = q.toString();
    return s ? '?' + s : '';
}

function go(hash) {
    if (location.hash === hash) {
        route();
    } else {
        location.hash = hash;
    }
}

function route() {
    for (const t of pageTimers) {
        clearTimeout(t);
        clearInterval(t);
    }
    pageTimers = [];

    const view = document.getElementById('view');
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, qs] = hash.split('?');
    const query = new URLSearchParams(qs || '');
    let nav = 'rankings';

    const m = path.match(/^\/domain\/([^/]+)$/);
    if (m) {
        showDomain(view, decodeURIComponent(m[1]).toLowerCase());
    } else if (path === '/categories') {
        nav = 'categories';
        showCategories(view);
    } else if (path === '/operator') {
        nav = 'operator';
        showOperator(view);
    } else {
        showRankings(view, query);
    }

    for (const a of document.querySelectorAll('[data-nav]')) {
        a.classList.toggle('active', a.dataset.nav === nav);
    }
    document.getElementById('key-state').textContent = adminKey()
        ? 'admin key in use' : 'public (no key)';
    window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);
route();

})();
