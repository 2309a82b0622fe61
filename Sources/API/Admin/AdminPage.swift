/// The `/admin` page: one HTML document, its stylesheet and its script, served by the app itself (no external assets).
///
/// Built for a strict Content-Security-Policy (`default-src 'none'; script-src 'self'; style-src 'self'; ...`):
/// no inline scripts, styles or event handlers, and the script builds every element with DOM APIs, never `innerHTML`.
/// The script reads `GET /api/admin/analytics` and `GET /api/admin/security-events` with the platform admin key as a
/// bearer token; the key is kept in `sessionStorage` and may be handed over once as `/admin#key=...`.
enum AdminPage {
    /// `GET /admin`, served as `text/html; charset=utf-8`.
    static let html: String = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <meta name="robots" content="noindex">
        <title>Petstore &middot; Platform analytics</title>
        <link rel="stylesheet" href="/admin/app.css">
        <script src="/admin/app.js" defer></script>
        </head>
        <body data-state="loading">
        <header class="masthead">
          <h1>Petstore <span>Platform analytics</span></h1>
          <button id="signout" class="quiet" type="button" hidden>Sign out</button>
        </header>
        <main>
          <noscript><p class="banner">This page needs JavaScript.</p></noscript>
          <form id="signin" class="card signin" hidden>
            <h2>Sign in</h2>
            <label for="key">Platform admin API key</label>
            <input id="key" name="key" type="password" autocomplete="off" spellcheck="false" required>
            <p id="signin-error" class="error" role="alert" hidden></p>
            <button type="submit">Sign in</button>
            <p class="hint">The key stays in this tab (session storage) and is sent as a bearer token.</p>
          </form>
          <div id="dashboard" hidden>
            <form id="filters" class="filters">
              <label>From <input id="from" name="from" type="date"></label>
              <label>To <input id="to" name="to" type="date"></label>
              <label>Tenant <select id="tenant" name="tenant"><option value="">All tenants</option></select></label>
              <button type="submit">Refresh</button>
              <span id="behind-pill" class="pill" hidden>figures catching up</span>
            </form>
            <p id="banner" class="banner" role="alert" hidden></p>
            <div id="content" hidden>
              <h2 id="totals-scope" class="eyebrow">Totals</h2>
              <section id="kpis" class="kpis" aria-labelledby="totals-scope"></section>
              <section class="charts">
                <figure id="fig-activity" class="card"></figure>
                <figure id="fig-species" class="card"></figure>
                <figure id="fig-security" class="card"></figure>
                <figure id="fig-tenants" class="card"></figure>
              </section>
              <section class="card">
                <h2>Tenants <span id="tenant-count" class="muted"></span></h2>
                <div class="scroll">
                  <table class="data">
                    <thead id="tenant-head"></thead>
                    <tbody id="tenant-rows"></tbody>
                  </table>
                </div>
              </section>
              <section class="card">
                <h2 id="events-title">Recent security events</h2>
                <div class="scroll">
                  <table class="data">
                    <thead><tr><th scope="col">Last seen (UTC)</th><th scope="col">Kind</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col">Route</th><th scope="col" class="num">Attempts</th></tr></thead>
                    <tbody id="event-rows"></tbody>
                  </table>
                </div>
              </section>
              <footer id="footer" class="footer"></footer>
            </div>
          </div>
        </main>
        </body>
        </html>
        """#

    /// `GET /admin/app.css`, served as `text/css; charset=utf-8`.
    static let css: String = #"""
        /* Series colours are the Okabe-Ito palette, distinguishable with the common colour-vision deficiencies. */
        :root {
          color-scheme: light dark;
          --bg: #f5f6f8; --card: #fff; --text: #1d2330; --muted: #5f6b7a; --line: #e2e6eb; --grid: #eef1f4;
          --accent: #0b5cad; --accent-text: #fff; --danger: #a3221b; --danger-bg: #fdeceb; --warn: #8a5a00; --warn-bg: #fff4dc;
          --c1: #0072b2; --c2: #e69f00; --c3: #cc79a7; --c4: #d55e00; --c5: #009e73;
          font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --bg: #13161b; --card: #1b1f26; --text: #e4e8ee; --muted: #9aa4b2; --line: #2d333d; --grid: #242a33;
            --accent: #4c9be8; --accent-text: #0d1117; --danger: #ff9c94; --danger-bg: #3b1f1d; --warn: #f0c060; --warn-bg: #3a2f14;
            --c1: #56b4e9;
          }
        }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        body { margin: 0; background: var(--bg); color: var(--text); }
        h1, h2 { margin: 0; }
        h2 { font-size: 15px; font-weight: 600; margin-bottom: 12px; }
        .muted, .hint { color: var(--muted); font-weight: 400; }
        .hint { font-size: 12px; margin: 0; }
        .eyebrow { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; margin-bottom: 8px; }

        .masthead { display: flex; align-items: center; justify-content: space-between; padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line); }
        .masthead h1 { font-size: 17px; font-weight: 650; }
        .masthead h1 span { color: var(--muted); font-weight: 400; margin-left: 6px; }
        main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 40px; }

        button { font: inherit; cursor: pointer; border-radius: 6px; padding: 0 14px; height: 32px; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-text); }
        button.quiet { background: transparent; color: var(--text); border-color: var(--line); }
        button:focus-visible, input:focus-visible, select:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
        input, select { font: inherit; color: var(--text); background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 0 8px; height: 32px; }

        .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 0 0 16px; box-shadow: 0 1px 2px rgba(16, 24, 40, .04); }
        .signin { max-width: 380px; margin: 12vh auto; display: grid; gap: 10px; }
        .signin label { font-weight: 500; }
        .error { color: var(--danger); margin: 0; }
        .banner { background: var(--danger-bg); color: var(--danger); border: 1px solid currentColor; border-radius: 8px; padding: 10px 14px; margin: 0 0 16px; }

        .filters { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 12px; margin-bottom: 16px; }
        .filters label { display: grid; gap: 3px; font-size: 12px; color: var(--muted); }
        .filters select { min-width: 180px; }
        .pill { margin-bottom: 7px; font-size: 12px; color: var(--warn); background: var(--warn-bg); border-radius: 999px; padding: 2px 10px; }
        body.busy #content { opacity: .55; transition: opacity .2s; }
        body.busy { cursor: progress; }

        .kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 16px; }
        .kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px; }
        .kpi p { margin: 0; }
        .kpi-label { font-size: 12px; color: var(--muted); }
        .kpi-value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; letter-spacing: -.01em; overflow-wrap: anywhere; }
        .kpi-note { font-size: 12px; color: var(--muted); }
        .kpi.alert { border-left: 3px solid var(--c4); }

        .charts { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 0 16px; }
        figure { margin: 0; min-width: 0; }
        figcaption { font-size: 15px; font-weight: 600; }
        .card h3 { font-size: 13px; font-weight: 600; color: var(--muted); margin: 14px 0 4px; }
        .legend { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; margin: 4px 0 8px; padding: 0; font-size: 12px; color: var(--muted); }
        .legend b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
        .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
        .c1 { --c: var(--c1); } .c2 { --c: var(--c2); } .c3 { --c: var(--c3); } .c4 { --c: var(--c4); } .c5 { --c: var(--c5); }
        .swatch { background: var(--c); }
        .chart rect { fill: var(--c); }
        .empty { color: var(--muted); font-style: italic; }

        svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
        .chart text { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
        .chart .ty { text-anchor: end; dominant-baseline: middle; }
        .chart .tx { text-anchor: middle; }
        .chart .label { text-anchor: end; dominant-baseline: middle; fill: var(--text); font-size: 12px; }
        .chart .value { dominant-baseline: middle; }
        .chart .grid { stroke: var(--grid); shape-rendering: crispEdges; }
        .chart .axis { stroke: var(--line); shape-rendering: crispEdges; }
        .chart .line { fill: none; stroke: var(--c); stroke-width: 1.5; stroke-linejoin: round; pointer-events: none; }
        .chart .hit { fill: transparent; }
        .chart .hit:hover { fill: var(--grid); }
        .chart rect:not(.hit):hover { opacity: .8; }

        .scroll { overflow-x: auto; }
        table.data { width: 100%; min-width: 720px; border-collapse: collapse; font-size: 13px; }
        .data th { text-align: left; font-size: 12px; font-weight: 600; color: var(--muted); padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
        .data td { padding: 7px 10px; border-bottom: 1px solid var(--grid); vertical-align: middle; }
        .data tbody tr:hover { background: var(--bg); }
        .data .num { text-align: right; font-variant-numeric: tabular-nums; }
        .data th button { background: none; border: 0; padding: 0; height: auto; color: inherit; font-weight: inherit; }
        .data th[aria-sort="ascending"] button::after { content: " \25B4"; }
        .data th[aria-sort="descending"] button::after { content: " \25BE"; }
        .data code, button.link { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
        .data time, .data code { white-space: nowrap; }
        button.link { background: none; border: 0; padding: 0; height: auto; color: var(--accent); text-align: left; overflow-wrap: break-word; }
        button.link:hover { text-decoration: underline; }
        .badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 999px; background: var(--grid); white-space: nowrap; }
        .badge.active { background: #e3f4ec; color: #0d6b45; }
        .badge.suspended, .badge.cross_tenant { background: var(--danger-bg); color: var(--danger); }
        .badge.unknown_tenant { background: var(--warn-bg); color: var(--warn); }
        @media (prefers-color-scheme: dark) { .badge.active { background: #173a2b; color: #7fdcb0; } }

        .footer { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: var(--muted); }
        .behind { color: var(--warn); }

        @media (max-width: 960px) {
          .charts { grid-template-columns: minmax(0, 1fr); }
          main { padding: 16px; }
          .masthead { padding: 12px 16px; }
          .data th, .data td { padding-left: 6px; padding-right: 6px; }
        }
        """#

    /// `GET /admin/app.js`, served as `text/javascript; charset=utf-8`.
    static let javascript: String = #"""
        // Petstore platform analytics. Everything is built with DOM APIs (textContent, createElement[NS]), never
        // innerHTML, so tenant-supplied strings such as slugs and species can only ever be text, and the strict CSP holds.
        'use strict';

        const KEY_STORAGE = 'petstore.admin-key';
        const SVG_NS = 'http://www.w3.org/2000/svg';
        const DAY_MS = 86400000;
        const number = new Intl.NumberFormat('en-US');
        const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
        const shortDay = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
        const longDay = new Intl.DateTimeFormat('en-US', { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC' });

        const ACTIVITY = [{ key: 'commands', name: 'Commands', cls: 'c1' }, { key: 'events', name: 'Events', cls: 'c2' }];
        const SECURITY = [
          { key: 'rate_limited_requests', name: 'Rate-limited requests', cls: 'c3' },
          { key: 'cross_tenant_attempts', name: 'Cross-tenant attempts', cls: 'c4' },
        ];
        const PETS = [{ key: 'active', name: 'Active', cls: 'c1' }, { key: 'removed', name: 'Removed', cls: 'c2' }];
        const COLUMNS = [
          { key: 'slug', label: 'Slug' }, { key: 'name', label: 'Name' }, { key: 'plan', label: 'Plan' }, { key: 'status', label: 'Status' },
          { key: 'pets.active', label: 'Active pets', numeric: true }, { key: 'pets.removed', label: 'Removed pets', numeric: true },
          { key: 'commands', label: 'Commands', numeric: true }, { key: 'events', label: 'Events', numeric: true },
          { key: 'rate_limited_requests', label: 'Rate-limited', numeric: true },
          { key: 'cross_tenant_attempts', label: 'Cross-tenant', numeric: true },
        ];
        // Only these values become class names; anything else the API sends is shown unstyled.
        const BADGES = new Set(['active', 'suspended', 'cross_tenant', 'unknown_tenant']);

        const state = { data: null, tenant: '', events: [], eventsError: null, slugs: [], slugById: new Map(), sort: { key: 'slug', dir: 1 }, seq: 0 };

        // ---- DOM helpers

        const $ = (id) => document.getElementById(id);

        function build(node, attrs, children) {
          for (const [name, value] of Object.entries(attrs || {})) {
            if (value === null || value === undefined || value === false) continue;
            node.setAttribute(name, typeof value === 'number' ? String(Math.round(value * 100) / 100) : String(value));
          }
          for (const child of children) {
            if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
          }
          return node;
        }
        const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
        const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

        // The element a checker reads: raw integer in data-value, en-US grouping in the text.
        const metric = (tag, name, value, cls) => h(tag, { class: cls, 'data-metric': name, 'data-value': value }, number.format(value));
        const badge = (value, text) => h('span', { class: BADGES.has(value) ? `badge ${value}` : 'badge' }, text || value);
        const pick = (object, path) => path.split('.').reduce((value, key) => (value == null ? value : value[key]), object);
        const plural = (n, word) => `${number.format(n)} ${word}${n === 1 ? '' : 's'}`;

        function innerWidth(node) {
          const style = getComputedStyle(node);
          return Math.max(node.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight), 240);
        }

        function formatTime(iso, seconds) {
          const time = new Date(iso);
          return Number.isNaN(time.getTime()) ? String(iso) : time.toISOString().slice(0, seconds ? 19 : 16).replace('T', ' ');
        }

        // ---- Session

        function takeKeyFromFragment() {
          const key = new URLSearchParams(location.hash.slice(1)).get('key');
          if (key === null) return;
          if (key.trim()) sessionStorage.setItem(KEY_STORAGE, key.trim());
          // replaceState, not a navigation: the key must not stay in the address bar or the session history.
          history.replaceState(history.state, '', location.pathname + location.search);
        }

        // The filters live in the address (?from=&to=&tenant=), so a view can be bookmarked or shared;
        // the key never does.
        function takeFiltersFromAddress() {
          const params = new URLSearchParams(location.search);
          for (const id of ['from', 'to']) if (params.get(id)) $(id).value = params.get(id);
          const slug = params.get('tenant');
          if (slug) {
            $('tenant').append(h('option', { value: slug }, slug));
            $('tenant').value = slug;
          }
        }

        function setState(value) {
          document.body.dataset.state = value;
        }

        function showDashboard(visible) {
          $('signin').hidden = visible;
          $('dashboard').hidden = !visible;
          $('signout').hidden = !visible;
        }

        function showSignIn(message) {
          state.seq += 1; // drop answers still in flight
          state.data = null;
          sessionStorage.removeItem(KEY_STORAGE);
          document.body.classList.remove('busy');
          showDashboard(false);
          $('signin-error').textContent = message || '';
          $('signin-error').hidden = !message;
          $('key').focus();
          setState('signin');
        }

        function showBanner(message) {
          $('banner').textContent = message || '';
          $('banner').hidden = !message;
        }

        // ---- API

        const apiError = (status, message) => Object.assign(new Error(message), { status });
        const isAuthError = (error) => error.status === 401 || error.status === 403;

        async function api(path) {
          let response;
          try {
            const headers = { Accept: 'application/json', Authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE) || ''}` };
            response = await fetch(path, { headers, cache: 'no-store' });
          } catch {
            throw apiError(0, 'The server could not be reached. Check the connection and try again.');
          }
          const body = await response.json().catch(() => null);
          if (response.ok && body) return body;
          if (response.ok) throw apiError(response.status, 'The server sent an answer that is not JSON.');
          // Problem details (RFC 9457): `detail` is the message meant for people.
          throw apiError(response.status, (body && (body.detail || body.title)) || `The server answered with status ${response.status}.`);
        }

        function filterParams() {
          const params = new URLSearchParams();
          for (const id of ['from', 'to', 'tenant']) if ($(id).value) params.set(id, $(id).value);
          return params;
        }

        async function load() {
          const seq = ++state.seq;
          const params = filterParams();
          const query = params.toString();
          history.replaceState(history.state, '', location.pathname + (query ? `?${query}` : ''));
          document.body.classList.add('busy');
          const [analytics, events] = await Promise.allSettled([
            api(`/api/admin/analytics${query ? `?${query}` : ''}`),
            api(`/api/admin/security-events?limit=20${params.get('tenant') ? `&tenant=${encodeURIComponent(params.get('tenant'))}` : ''}`),
          ]);
          if (seq !== state.seq) return; // superseded by a newer request or a sign-out
          document.body.classList.remove('busy');
          const denied = [analytics, events].find((result) => result.status === 'rejected' && isAuthError(result.reason));
          if (denied) return showSignIn(denied.reason.message);
          state.events = events.status === 'fulfilled' ? events.value.items || [] : [];
          state.eventsError = events.status === 'rejected' ? events.reason.message : null;
          if (analytics.status === 'rejected') {
            showBanner(analytics.reason.message);
            $('content').hidden = true; // stale figures under an error would mislead
            return setState('error');
          }
          state.data = analytics.value;
          state.tenant = params.get('tenant') || '';
          showBanner(null);
          render();
          setState('ready');
        }

        // ---- Rendering

        function render() {
          const data = state.data;
          $('content').hidden = false;
          syncFilters(data);
          renderKpis(data);
          renderCharts();
          renderTenants();
          renderEvents();
          renderFooter(data);
        }

        function syncFilters(data) {
          $('from').value = data.from;
          $('to').value = data.to;
          const slugs = data.tenants.map((tenant) => tenant.slug);
          for (const tenant of data.tenants) state.slugById.set(tenant.id, tenant.slug);
          // A filtered answer lists one tenant, so keep offering the slugs of the last unfiltered one.
          state.slugs = state.tenant ? [...new Set([...state.slugs, ...slugs])].sort() : slugs;
          $('tenant').replaceChildren(h('option', { value: '' }, 'All tenants'), ...state.slugs.map((slug) => h('option', { value: slug }, slug)));
          $('tenant').value = state.tenant;
        }

        function renderKpis(data) {
          const o = data.overall;
          const range = plural(dayCount(data.from, data.to), 'day');
          const statuses = (o.tenants_by_status || []).filter((row) => row.tenants > 0).map((row) => `${number.format(row.tenants)} ${row.status}`).join(' \u00b7 ');
          $('totals-scope').textContent = `Totals \u2014 ${overallScope(data)}`;
          const cards = [
            ['overall.tenants', 'Tenants', o.tenants, statuses],
            ['overall.pets.active', 'Active pets', o.pets.active, 'current'],
            ['overall.pets.removed', 'Removed pets', o.pets.removed, 'current'],
            ['overall.commands', 'Commands', o.commands, range],
            ['overall.events', 'Events', o.events, range],
            ['overall.rate_limited_requests', 'Rate-limited requests', o.rate_limited_requests, range],
            ['overall.cross_tenant_attempts', 'Cross-tenant attempts', o.cross_tenant_attempts, range],
          ];
          $('kpis').replaceChildren(...cards.map(([name, label, value, note]) =>
            h('div', { class: name === 'overall.cross_tenant_attempts' && value > 0 ? 'kpi alert' : 'kpi' },
              h('p', { class: 'kpi-label' }, label), metric('p', name, value, 'kpi-value'), h('p', { class: 'kpi-note' }, note))));
        }

        function renderCharts() {
          const data = state.data;
          const tenant = state.tenant ? data.tenants.find((t) => t.slug === state.tenant) : null;
          const scope = tenant ? tenant.slug : 'all tenants';
          const days = densify(tenant ? tenant.daily : data.overall.daily, data.from, data.to);
          const species = speciesRows(tenant ? tenant.pets_by_species : data.overall.pets_by_species);

          figure('fig-activity', `Commands and events per day \u2014 ${scope}`, legend(ACTIVITY, days),
            dayChart(innerWidth($('fig-activity')), days, ACTIVITY, `Commands and events per day, ${scope}, ${data.from} to ${data.to}`, 260));
          figure('fig-security', `Rate-limited requests and cross-tenant attempts per day \u2014 ${scope}`, legend(SECURITY, days),
            dayChart(innerWidth($('fig-security')), days, SECURITY, `Rate-limited requests and cross-tenant attempts per day, ${scope}`, 170));
          figure('fig-species', `Pets by species \u2014 ${scope}`, legend(PETS, species),
            barList(innerWidth($('fig-species')), species, PETS, `Pets by species, ${scope}, active and removed`));

          const width = innerWidth($('fig-tenants'));
          const one = [{ key: 'tenants', name: 'tenants', cls: 'c5' }];
          const plans = (data.overall.tenants_by_plan || []).map((row) => ({ label: row.plan, tenants: row.tenants }));
          const statuses = (data.overall.tenants_by_status || []).map((row) => ({ label: row.status, tenants: row.tenants }));
          figure('fig-tenants', `Tenants \u2014 ${overallScope(data)}`,
            h('h3', {}, 'By plan'), barList(width, plans, one, 'Tenants by plan'),
            h('h3', {}, 'By status'), barList(width, statuses, one, 'Tenants by status'));
        }

        // With ?tenant= the API may total just that tenant in `overall`; label the figures by what they cover.
        const overallScope = (data) => (state.tenant && data.overall.tenants === data.tenants.length ? state.tenant : 'all tenants');

        function figure(id, title, ...content) {
          $(id).replaceChildren(h('figcaption', {}, title), ...content);
        }

        function legend(series, rows) {
          return h('ul', { class: 'legend' }, ...series.map((item) => h('li', {},
            h('span', { class: `swatch ${item.cls}` }), `${item.name} `, h('b', {}, number.format(sum(rows, item.key))))));
        }

        const sum = (rows, key) => rows.reduce((total, row) => total + (row[key] || 0), 0);
        const dayCount = (from, to) => Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS) + 1;

        // Tenant `daily` only lists active days; charts need every day of the range.
        function densify(daily, from, to) {
          const byDay = new Map((daily || []).map((row) => [row.day, row]));
          const days = [];
          for (let ms = Date.parse(from); ms <= Date.parse(to); ms += DAY_MS) {
            const day = new Date(ms).toISOString().slice(0, 10);
            days.push(byDay.get(day) || { day, commands: 0, events: 0, rate_limited_requests: 0, cross_tenant_attempts: 0 });
          }
          return days;
        }

        function speciesRows(list) {
          const sorted = [...(list || [])].sort((a, b) => b.active + b.removed - (a.active + a.removed) || a.species.localeCompare(b.species));
          const rows = sorted.slice(0, 10).map((row) => ({ label: row.species, active: row.active, removed: row.removed }));
          const rest = sorted.slice(10);
          if (rest.length) rows.push({ label: `other (${number.format(rest.length)} species)`, active: sum(rest, 'active'), removed: sum(rest, 'removed') });
          return rows;
        }

        // 0 and a few round steps (1, 2 or 5 times a power of ten) covering max; integers only.
        function niceTicks(max, count = 4) {
          if (max <= 0) return [0, 1];
          const raw = max / count;
          const magnitude = 10 ** Math.floor(Math.log10(raw));
          const step = Math.max(1, [1, 2, 5, 10].map((f) => f * magnitude).find((candidate) => candidate >= raw));
          const ticks = [];
          for (let tick = 0; tick < max + step; tick += step) ticks.push(tick);
          return ticks;
        }

        // Grouped bars per day (lines once a day is too thin for bars), a y axis with round ticks, sparse day labels.
        function dayChart(width, days, series, label, height) {
          const m = { top: 8, right: 4, bottom: 22, left: 40 };
          const plotW = width - m.left - m.right;
          const plotH = height - m.top - m.bottom;
          const ticks = niceTicks(Math.max(0, ...days.flatMap((day) => series.map((item) => day[item.key] || 0))));
          const y = (value) => m.top + plotH - (value / ticks[ticks.length - 1]) * plotH;
          const band = plotW / Math.max(days.length, 1);
          const barW = (band * (band > 8 ? 0.72 : 0.9)) / series.length;
          const every = Math.ceil(days.length / Math.max(1, Math.floor(plotW / 64)));
          const root = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label });
          for (const tick of ticks) {
            root.append(s('line', { class: tick ? 'grid' : 'axis', x1: m.left, x2: width - m.right, y1: y(tick), y2: y(tick) }),
              s('text', { class: 'ty', x: m.left - 6, y: y(tick) }, compact.format(tick)));
          }
          days.forEach((day, i) => {
            const x = m.left + i * band;
            const title = s('title', {}, `${longDay.format(Date.parse(day.day))}: ${series.map((item) => `${number.format(day[item.key] || 0)} ${item.name.toLowerCase()}`).join(', ')}`);
            root.append(s('rect', { class: 'hit', x, y: m.top, width: band, height: plotH }, title));
            series.forEach((item, j) => {
              const value = day[item.key] || 0;
              if (band < 4 || value <= 0) return;
              const barH = Math.max(y(0) - y(value), 1); // a non-zero day never disappears
              root.append(s('rect', { class: item.cls, x: x + (band - barW * series.length) / 2 + j * barW, y: y(0) - barH, width: barW, height: barH }, title.cloneNode(true)));
            });
            if (i % every === 0) root.append(s('text', { class: 'tx', x: x + band / 2, y: height - 6 }, shortDay.format(Date.parse(day.day))));
          });
          if (band < 4) {
            const point = (day, i, key) => `${(m.left + (i + 0.5) * band).toFixed(1)},${y(day[key] || 0).toFixed(1)}`;
            for (const item of series) root.append(s('polyline', { class: `line ${item.cls}`, points: days.map((day, i) => point(day, i, item.key)).join(' ') }));
          }
          return root;
        }

        // Horizontal bars, one row per label, segments stacked in series order, total at the end.
        function barList(width, rows, series, label) {
          if (!rows.length) return h('p', { class: 'empty' }, 'Nothing to show yet.');
          const rowH = 26;
          const labelW = Math.min(140, Math.round(width * 0.34));
          const total = (row) => series.reduce((acc, item) => acc + (row[item.key] || 0), 0);
          const scale = (width - labelW - 56) / Math.max(1, ...rows.map(total));
          const root = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${rows.length * rowH}`, role: 'img', 'aria-label': label });
          rows.forEach((row, i) => {
            const mid = i * rowH + rowH / 2;
            const text = row.label.length > 20 ? `${row.label.slice(0, 19)}\u2026` : row.label;
            root.append(s('text', { class: 'label', x: labelW - 8, y: mid }, text, s('title', {}, row.label)));
            let x = labelW;
            for (const item of series) {
              const value = row[item.key] || 0;
              if (value <= 0) continue;
              const w = Math.max(value * scale, 2);
              root.append(s('rect', { class: item.cls, x, y: mid - 8, width: w, height: 16, rx: 2 },
                s('title', {}, `${row.label}: ${number.format(value)} ${item.name.toLowerCase()}`)));
              x += w;
            }
            root.append(s('text', { class: 'value', x: x + 6, y: mid }, number.format(total(row))));
          });
          return root;
        }

        function renderTenants() {
          const { key, dir } = state.sort;
          const compare = (a, b) => (typeof a === 'number' ? a - b : String(a).localeCompare(String(b)));
          const tenants = [...state.data.tenants].sort((a, b) => dir * compare(pick(a, key), pick(b, key)) || a.slug.localeCompare(b.slug));
          $('tenant-head').replaceChildren(h('tr', {}, ...COLUMNS.map((column) => {
            const sort = column.key === key ? (dir > 0 ? 'ascending' : 'descending') : null;
            return h('th', { scope: 'col', class: column.numeric ? 'num' : null, 'aria-sort': sort },
              h('button', { type: 'button', 'data-sort': column.key }, column.label));
          })));
          const rows = tenants.map((tenant) => h('tr', {},
            h('td', {}, h('button', { type: 'button', class: 'link', 'data-slug': tenant.slug, title: `Show only ${tenant.slug}` }, tenant.slug)),
            h('td', {}, tenant.name), h('td', {}, tenant.plan), h('td', {}, badge(tenant.status)),
            ...COLUMNS.filter((column) => column.numeric).map((column) =>
              metric('td', `tenant.${tenant.slug}.${column.key}`, pick(tenant, column.key), 'num'))));
          $('tenant-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' }, 'No tenants.'))]));
          $('tenant-count').textContent = state.tenant ? `(filtered to ${state.tenant})` : `(${number.format(tenants.length)})`;
        }

        function renderEvents() {
          $('events-title').textContent = state.tenant ? `Recent security events \u2014 ${state.tenant}` : 'Recent security events';
          const message = state.eventsError || (state.events.length ? null : 'No security events recorded.');
          if (message) {
            $('event-rows').replaceChildren(h('tr', {}, h('td', { colspan: 6, class: state.eventsError ? 'error' : 'empty' }, message)));
            return;
          }
          const kinds = { cross_tenant: 'Cross-tenant', unknown_tenant: 'Unknown tenant' };
          $('event-rows').replaceChildren(...state.events.map((event) => h('tr', {},
            h('td', { title: `First seen ${formatTime(event.first_seen, true)} UTC` }, h('time', { datetime: event.last_seen }, formatTime(event.last_seen))),
            h('td', {}, badge(event.kind, kinds[event.kind])),
            h('td', {}, tenantLabel(event.actor_tenant) || event.client_address || '\u2014'),
            h('td', {}, event.target_slug || tenantLabel(event.target_tenant) || '\u2014'),
            h('td', {}, h('code', {}, `${event.method} ${event.route}`)),
            h('td', { class: 'num' }, number.format(event.attempts)))));
        }

        // A tenant id as its slug when known, else as a shortened id (full id in the tooltip).
        function tenantLabel(id) {
          if (!id) return null;
          return state.slugById.get(id) || h('span', { class: 'muted', title: id }, `${id.slice(0, 8)}\u2026`);
        }

        function renderFooter(data) {
          const projection = data.projection || {};
          const eventsBehind = projection.events_behind || 0;
          const tenantsBehind = projection.tenants_behind || 0;
          const behind = eventsBehind > 0 || tenantsBehind > 0;
          const note = `Figures are slightly behind the event log: ${plural(eventsBehind, 'event')} in ${plural(tenantsBehind, 'tenant')} not yet counted.`;
          $('behind-pill').hidden = !behind;
          $('behind-pill').title = behind ? note : '';
          $('footer').replaceChildren(
            h('span', {}, `Generated ${formatTime(data.generated_at, true)} UTC`),
            h('span', {}, `Range ${data.from} to ${data.to} (${plural(dayCount(data.from, data.to), 'UTC day')})`),
            h('span', {}, `Projection ${projection.version || 'unknown'}`),
            ...(behind ? [h('span', { class: 'behind' }, note)] : []));
        }

        // ---- Wiring

        function selectTenant(slug) {
          if (![...$('tenant').options].some((option) => option.value === slug)) $('tenant').append(h('option', { value: slug }, slug));
          $('tenant').value = slug;
          load();
        }

        function sortBy(key) {
          const numeric = COLUMNS.find((column) => column.key === key).numeric;
          state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: numeric ? -1 : 1 };
          renderTenants();
        }

        function start() {
          takeKeyFromFragment();
          takeFiltersFromAddress();
          $('signin').addEventListener('submit', (event) => {
            event.preventDefault();
            const key = $('key').value.trim();
            if (!key) return;
            sessionStorage.setItem(KEY_STORAGE, key);
            $('key').value = '';
            showDashboard(true);
            load();
          });
          $('signout').addEventListener('click', () => {
            for (const id of ['from', 'to', 'tenant']) $(id).value = '';
            state.slugs = [];
            state.slugById.clear();
            showSignIn();
          });
          $('filters').addEventListener('submit', (event) => {
            event.preventDefault();
            load();
          });
          // Typing a year into a date input commits a "valid" date per digit (0002, 0020, ...): wait for a pause.
          let changeTimer;
          $('filters').addEventListener('change', (event) => {
            clearTimeout(changeTimer);
            changeTimer = setTimeout(load, event.target.type === 'date' ? 600 : 0);
          });
          $('tenant-head').addEventListener('click', (event) => {
            const button = event.target.closest('button[data-sort]');
            if (button) sortBy(button.dataset.sort);
          });
          $('tenant-rows').addEventListener('click', (event) => {
            const button = event.target.closest('button[data-slug]');
            if (button) selectTenant(button.dataset.slug);
          });
          let resizeTimer;
          window.addEventListener('resize', () => {
            clearTimeout(resizeTimer);
            resizeTimer = setTimeout(() => state.data && !$('content').hidden && renderCharts(), 150);
          });
          if (!sessionStorage.getItem(KEY_STORAGE)) return showSignIn();
          showDashboard(true);
          load();
        }

        start();
        """#
}
