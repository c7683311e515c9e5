#!/usr/bin/env node
// Visits pages of the dashboard in Debian's chromium, headless, and
// prints what a person would see on each as one JSON document: the
// headings and text, the rankings' rows, the chart, the error messages,
// and everything the browser complained about (console errors, uncaught
// exceptions, failed requests, answers of 400 and above).
//
//   node tools/browser/visit.mjs [--key KEY [--watch RUN]]
//       [--shots DIR [--shoot NAME,...]] NAME=URL [NAME=URL ...]
//
// Pages are visited in order in one browser, each in a new tab of a
// fresh profile.  --key types the key into the operator page's form (as
// a person pastes it) before the pages whose NAME starts with "operator"
// are read, and --watch then asks that page to watch a run by its id.
// --shots saves DIR/dashboard-NAME.png of each page (of those --shoot
// names).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const CHROMIUM = process.env.DR_CHROMIUM || '/usr/bin/chromium';
// how long a page may take to load every section (longer under valgrind)
const SETTLE_MS = Number(process.env.DR_BROWSER_WAIT_MS) || 20000;

function parseArgs(argv) {
    const o = { pages: [] };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--key') {
            o.key = argv[++i];
        } else if (a === '--watch') {
            o.watch = argv[++i];
        } else if (a === '--shots') {
            o.shots = argv[++i];
        } else if (a === '--shoot') {
            o.shoot = argv[++i].split(',');
        } else if (/^[a-z0-9-]+=/.test(a)) {
            const at = a.indexOf('=');
            o.pages.push({ name: a.slice(0, at), url: a.slice(at + 1) });
        } else {
            throw new Error(`unexpected argument ${a}`);
        }
    }
    if (o.pages.length === 0) {
        throw new Error('usage: visit.mjs [--key KEY [--watch RUN]] '
                        + '[--shots DIR [--shoot NAME,...]] NAME=URL ...');
    }
    return o;
}

// what the page shows, once every section has loaded or failed
async function observe(page) {
    return page.evaluate(() => {
        const text = (sel) => Array.from(document.querySelectorAll(sel),
                                         (e) => e.textContent.trim());
        const chart = document.querySelector('svg.chart');
        return {
            title: document.title,
            atLoad: window.drAtLoad || null,
            h1: text('#view h1'),
            nav: text('header nav a.active'),
            keyState: text('#key-state').join(''),
            text: document.querySelector('#view').innerText.slice(0, 8000),
            rankings: text('table.rankings td a.domain'),
            pager: text('.pager span').join(' '),
            errors: Array.from(document.querySelectorAll('.error'),
                               (e) => ({ status: e.dataset.status || null,
                                         text: e.textContent.trim() })),
            chart: chart && {
                paths: Array.from(chart.querySelectorAll('path'),
                                  (p) => (p.getAttribute('d') || '')
                                      .split(/[ML]/).length - 1),
                circles: chart.querySelectorAll('circle').length,
                width: chart.getBoundingClientRect().width,
                height: chart.getBoundingClientRect().height,
            },
            models: text('table.models tbody tr td:first-child'),
            categories: text('table.categories tbody tr td:first-child'),
            health: text('table.health tbody tr td:first-child'),
            runs: text('table.runs tbody tr td:first-child'),
        };
    });
}

async function settle(page) {
    await page.waitForFunction(() => document.querySelector('#view h1')
        && !document.querySelector('#view [aria-busy], #view .loading'),
    { timeout: SETTLE_MS, polling: 100 });
}

async function visit(browser, spec, opt) {
    const page = await browser.newPage();
    const seen = { console: [], exceptions: [], failed: [], http: [] };

    page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warn') {
            seen.console.push({ type: m.type(), text: m.text() });
        }
    });
    page.on('pageerror', (e) => seen.exceptions.push(String(e.message)));
    page.on('requestfailed', (r) => seen.failed.push({
        url: r.url(), error: r.failure() && r.failure().errorText }));
    page.on('response', (r) => {
        if (r.status() >= 400) {
            seen.http.push({ url: r.url(), status: r.status() });
        }
    });

    // what the page holds when its load event fires (what a dump or a
    // print taken then shows)
    await page.evaluateOnNewDocument(() => {
        window.addEventListener('load', () => {
            window.drAtLoad = {
                rankings: document.querySelectorAll('table.rankings a.domain')
                    .length,
                svg: document.querySelectorAll('#view svg').length,
            };
        });
    });
    await page.setViewport({ width: 1200, height: 900 });
    const res = await page.goto(spec.url, { waitUntil: 'load' });
    const out = { name: spec.name, url: spec.url,
                  status: res ? res.status() : null,
                  headers: res ? res.headers() : {} };
    try {
        await settle(page);
        if (opt.key && spec.name.startsWith('operator')) {
            await page.type('input[name=key]', opt.key);
            await Promise.all([
                page.click('form button[type=submit]'),
                page.waitForFunction(() => document.querySelector('#runs')
                    && !document.querySelector('input[name=key]'),
                { timeout: SETTLE_MS }),
            ]);
            await settle(page);
            if (opt.watch) {
                await page.type('input[name=run]', opt.watch);
                await Promise.all([
                    page.click('#runs form:nth-of-type(2) button'),
                    page.waitForSelector('table.runs', { timeout: SETTLE_MS }),
                ]);
            }
        }
        out.settled = true;
    } catch (e) {
        out.settled = false;
        out.settleError = String(e.message);
    }
    Object.assign(out, await observe(page), seen);
    if (opt.shots && (!opt.shoot || opt.shoot.includes(spec.name))) {
        out.screenshot = join(opt.shots, `dashboard-${spec.name}.png`);
        await page.screenshot({ path: out.screenshot, fullPage: true });
    }
    await page.close();
    return out;
}

async function main() {
    const opt = parseArgs(process.argv.slice(2));
    const profile = mkdtempSync(join(tmpdir(), 'dr-chromium-'));
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu',
               '--disable-quic', '--no-first-run',
               '--disable-background-networking',
               '--disable-component-update', '--disable-sync',
               `--user-data-dir=${profile}`],
    });
    const results = [];
    try {
        for (const spec of opt.pages) {
            results.push(await visit(browser, spec, opt));
        }
    } finally {
        await browser.close();
        rmSync(profile, { recursive: true, force: true });
    }
    process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => {
    process.stderr.write(`visit.mjs: ${e.stack || e}\n`);
    process.exit(1);
});
