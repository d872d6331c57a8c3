// The operator console. Talks to the router's JSON API with the session cookie; every change
// carries the session's CSRF token. All text from requests is set with textContent, never
// as HTML. Rows are kept by request id across refreshes, so a half-typed account or code
// survives the live updates.
'use strict';

const REFRESH_MS = 1500;
const state = {
  csrf: null, accounts: [], facts: new Map(), clients: new Map(), skew: 0, timer: null,
  busy: new Set(), reloginWarningSecs: 0,
};
const $ = (selector) => document.querySelector(selector);

function say(text, kind) {
  const el = $('#status');
  el.textContent = text;
  el.className = kind || '';
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(data && data.message ? data.message : `HTTP ${response.status}`);
    error.status = response.status;
    error.code = data && data.error;
    throw error;
  }
  return data;
}

function showSignIn() {
  clearInterval(state.timer);
  state.timer = null;
  state.csrf = null;
  $('#client-key-value').textContent = '';
  $('#client-key').hidden = true;
  $('#console').hidden = true;
  $('#sign-out').hidden = true;
  $('#sign-in').hidden = false;
  $('#token').focus();
}

function signedIn(session) {
  state.csrf = session.csrf_token;
  state.accounts = session.accounts || [];
  $('#sign-in').hidden = true;
  $('#console').hidden = false;
  $('#sign-out').hidden = false;
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function now() { return Date.now() + state.skew; }

function cell(label, text, className) {
  const td = document.createElement('td');
  td.dataset.label = label;
  if (text !== undefined) td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(text, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function accountLabel(id) {
  if (id === null || id === undefined) return '—';
  const a = state.accounts.find((x) => x.id === id);
  return a && a.label ? `${a.label} (${id})` : String(id);
}

// What an account option says: its label, and whether it is paused or its last login failed.
function accountOption(option, a) {
  const f = state.facts.get(a.id) || {};
  const notes = [];
  if (f.paused) notes.push('paused');
  if (f.last_failure_at) notes.push('last login failed');
  const name = a.label ? `${a.label} (${a.id})` : String(a.id);
  option.textContent = notes.length ? `${name}: ${notes.join(', ')}` : name;
  option.disabled = Boolean(f.paused);
}

// The accounts request `r` may be given: its enrolled client's allowed ones, else all.
function allowedAccounts(r) {
  const client = r.client_id && state.clients.get(r.client_id);
  const allowed = client && client.accounts.length ? new Set(client.accounts) : null;
  return state.accounts.filter((a) => !allowed || allowed.has(a.id));
}

function accountChooser(r) {
  if (state.accounts.length) {
    const select = document.createElement('select');
    select.className = 'account';
    select.setAttribute('aria-label', 'Account');
    for (const a of allowedAccounts(r)) {
      const option = document.createElement('option');
      option.value = String(a.id);
      accountOption(option, a);
      select.appendChild(option);
    }
    return select;
  }
  const input = document.createElement('input');
  input.className = 'account';
  input.type = 'number';
  input.min = '0';
  input.placeholder = 'account';
  input.setAttribute('aria-label', 'Account number');
  return input;
}

// Runs one action for a request, keeping the operator informed and the row usable.
async function act(id, label, run) {
  if (state.busy.has(id)) return;
  state.busy.add(id);
  document.querySelectorAll(`tr[data-id="${id}"] button`).forEach((b) => { b.disabled = true; });
  say(`${label}…`);
  try {
    const result = await run();
    say(`${label}: done${result && result.status ? ` (now ${result.status})` : ''}.`, 'ok');
  } catch (error) {
    if (error.status === 401) { say('Your session ended; sign in again.', 'error'); showSignIn(); return; }
    say(`${label} failed: ${error.message}`, 'error');
  } finally {
    state.busy.delete(id);
    document.querySelectorAll(`tr[data-id="${id}"] button`).forEach((b) => { b.disabled = false; });
    refresh();
  }
}

// The client's name with a badge that says whether an enrolled client's key made the request.
function clientCell(r) {
  const td = cell('Client', r.client_name, 'client');
  const badge = document.createElement('span');
  badge.className = r.verified ? 'badge verified' : 'badge unverified';
  badge.textContent = r.verified ? 'verified' : 'unverified';
  badge.title = r.verified ? `enrolled client ${r.client_id}` : 'no client key: the name is only a claim';
  td.append(' ', badge);
  return td;
}

// A long-lived token has nothing to refresh and cannot be cut short: the operator sees its
// lifetime before approving.
function scopesCell(r) {
  const td = cell('Scopes', r.scopes.join(' ') || '(default)', 'scopes');
  if (r.lifetime_secs) {
    const badge = document.createElement('span');
    badge.className = 'badge long-lived';
    badge.textContent = `long-lived: ${lifetimeText(r.lifetime_secs)}`;
    badge.title = 'a token with no refresh token, valid for this long after approval';
    td.append(' ', badge);
  }
  return td;
}

function lifetimeText(secs) {
  for (const [unit, name] of [[86400, 'd'], [3600, 'h'], [60, 'm']]) {
    if (secs % unit === 0) return `${secs / unit}${name}`;
  }
  return `${secs}s`;
}

function openRow(r) {
  const tr = document.createElement('tr');
  tr.dataset.id = r.request_id;
  tr.append(
    clientCell(r),
    cell('Host', r.peer_addr ? `${r.hostname} (${r.peer_addr})` : r.hostname),
    scopesCell(r),
    cell('Age', '', 'age'),
    cell('Expires in', '', 'left'),
    cell('Status', '', 'status'),
    cell('Account', '', 'chosen'),
  );
  const actions = document.createElement('div');
  actions.className = 'actions';
  const chooser = accountChooser(r);
  const short = r.request_id.slice(0, 8);
  actions.append(
    chooser,
    button('Approve', 'primary approve', () => {
      const account = Number(chooser.value);
      if (chooser.value === '' || !Number.isInteger(account) || account < 0) {
        say('Choose an account number first.', 'error');
        chooser.focus();
        return;
      }
      act(r.request_id, `Approve ${short} with account ${accountLabel(account)}`, () =>
        api('POST', `/v1/token-requests/${r.request_id}/select-account`, { account_id: account }));
    }),
    button('Deny', 'danger deny', () =>
      act(r.request_id, `Deny ${short}`, () => api('POST', `/v1/token-requests/${r.request_id}/deny`))),
  );
  const code = document.createElement('input');
  code.className = 'code';
  code.placeholder = 'paste code#state';
  code.setAttribute('aria-label', 'Authorization code');
  const useCode = button('Use code', 'use-code', () => {
    if (!code.value.trim()) { say('Paste the code the provider showed first.', 'error'); code.focus(); return; }
    act(r.request_id, `Use code for ${short}`, () =>
      api('POST', `/v1/token-requests/${r.request_id}/code`, { code: code.value.trim() }));
  });
  const codeBox = document.createElement('span');
  codeBox.className = 'code-box';
  codeBox.append(code, useCode);
  actions.append(codeBox);
  const td = cell('Actions');
  td.append(actions);
  tr.append(td);
  return tr;
}

function updateOpenRow(tr, r) {
  const t = now();
  tr.querySelector('.age').textContent = duration(t - Date.parse(r.created_at));
  tr.querySelector('.left').textContent = duration(Date.parse(r.expires_at) - t);
  const status = tr.querySelector('.status');
  status.textContent = r.status.replace('_', ' ');
  status.className = `status status-${r.status}`;
  tr.querySelector('.chosen').textContent = accountLabel(r.account_id);
  tr.querySelector('.code-box').hidden = r.status !== 'in_progress';
  for (const option of tr.querySelectorAll('select.account option')) {
    const a = state.accounts.find((x) => String(x.id) === option.value);
    if (a) accountOption(option, a);
  }
}

// The chosen account, and whose tokens the provider said they are, when it did.
function loggedIn(r) {
  const who = [r.account_email, r.organization_name].filter(Boolean).join(', ');
  return who ? `${accountLabel(r.account_id)} (${who})` : accountLabel(r.account_id);
}

function recentRow(r) {
  const tr = document.createElement('tr');
  tr.dataset.id = r.request_id;
  tr.append(
    cell('Client', r.client_name, 'client'),
    cell('Host', r.hostname),
    cell('Status', '', 'status'),
    cell('Account', loggedIn(r)),
    cell('Finished', '', 'finished'),
  );
  const actions = document.createElement('div');
  actions.className = 'actions';
  actions.append(button('Audit', 'audit', () => toggleAudit(tr, r.request_id)));
  const td = cell('Actions');
  td.append(actions);
  tr.append(td);
  return tr;
}

function updateRecentRow(tr, r) {
  const status = tr.querySelector('.status');
  status.textContent = r.error ? `${r.status}: ${r.error}` : r.status;
  status.className = `status status-${r.status}`;
  // A login whose refresh token dies within notify.relogin_warning_secs: someone must log
  // that account in again for this client before then.
  const due = r.status === 'approved' && r.refresh_expires_at
    && Date.parse(r.refresh_expires_at) - now() < state.reloginWarningSecs * 1000;
  if (due) {
    const badge = document.createElement('span');
    badge.className = 'badge relogin-due';
    badge.textContent = `re-login due by ${new Date(r.refresh_expires_at).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    status.append(' ', badge);
  }
  tr.querySelector('.finished').textContent = `${duration(now() - Date.parse(r.updated_at))} ago`;
  const actions = tr.querySelector('.actions');
  const revoke = actions.querySelector('.revoke');
  if (r.status === 'approved' && !revoke) {
    const short = r.request_id.slice(0, 8);
    actions.prepend(button('Revoke', 'danger revoke', () =>
      act(r.request_id, `Revoke ${short}`, () => api('POST', `/v1/token-requests/${r.request_id}/revoke`))));
  } else if (r.status !== 'approved' && revoke) {
    revoke.remove();
  }
}

async function toggleAudit(tr, id) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains('audit')) { next.remove(); return; }
  try {
    const data = await api('GET', `/v1/audit?request_id=${id}`);
    const row = document.createElement('tr');
    row.className = 'audit';
    row.dataset.auditFor = id;
    const td = document.createElement('td');
    td.colSpan = 6;
    const list = document.createElement('ol');
    for (const e of data.events) {
      const li = document.createElement('li');
      const from = e.from_status ? `${e.from_status} → ` : '';
      const detail = e.detail ? ` (${e.detail})` : '';
      li.textContent = `${new Date(e.at).toLocaleString()}: ${e.actor} ${e.action}, ${from}${e.to_status}${detail}`;
      list.appendChild(li);
    }
    td.appendChild(list);
    row.appendChild(td);
    tr.after(row);
  } catch (error) {
    say(`Audit trail failed: ${error.message}`, 'error');
  }
}

// Keeps one <tr> per request: gone ones are removed, new ones inserted in place, the rest
// updated where they stand. A row moves only when the order changed, so the row being typed
// in keeps its focus across refreshes.
function sync(tbody, list, make, update) {
  const wanted = new Set(list.map((r) => r.request_id));
  for (const tr of [...tbody.children]) {
    if (!wanted.has(tr.dataset.id || tr.dataset.auditFor)) tr.remove();
  }
  let cursor = tbody.firstElementChild;
  for (const r of list) {
    let tr = tbody.querySelector(`tr[data-id="${r.request_id}"]`);
    if (!tr) {
      tr = make(r);
      tbody.insertBefore(tr, cursor);
    } else if (tr !== cursor) {
      const audit = tbody.querySelector(`tr[data-audit-for="${r.request_id}"]`);
      tbody.insertBefore(tr, cursor);
      if (audit) tr.after(audit);
    }
    update(tr, r);
    cursor = tr.nextElementSibling;
    if (cursor && cursor.dataset.auditFor === r.request_id) cursor = cursor.nextElementSibling;
  }
}

function when(at) {
  return at ? `${duration(now() - Date.parse(at))} ago` : '—';
}

// A usage window as a bar and its percentage, with when it resets; '—' before any reading.
function usageBar(td, window, usage) {
  if (!window) {
    td.textContent = usage && usage.error ? `— (${usage.error})` : '—';
    return;
  }
  const meter = document.createElement('meter');
  meter.min = 0; meter.max = 100; meter.low = 70; meter.high = 90; meter.optimum = 0;
  meter.value = window.utilization;
  const resets = window.resets_at ? `, resets in ${duration(Date.parse(window.resets_at) - now())}` : '';
  meter.title = `${window.utilization}% used${resets}`;
  const text = document.createElement('span');
  text.className = 'percent';
  text.textContent = ` ${Math.round(window.utilization)}%`;
  td.replaceChildren(meter, text);
}

function renderAccounts(accounts) {
  const tbody = $('#accounts tbody');
  for (const a of accounts) {
    let tr = tbody.querySelector(`tr[data-account="${a.id}"]`);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.account = String(a.id);
      tr.append(cell('Account', accountLabel(a.id)), cell('Email', a.email || '—'),
        cell('State', '', 'state'), cell('Live tokens', '', 'live'),
        cell('5-hour use', '', 'five-hour'), cell('Weekly use', '', 'seven-day'),
        cell('Last approved', '', 'approved'), cell('Last failure', '', 'failure'));
      const td = cell('Actions');
      const actions = document.createElement('div');
      actions.className = 'actions';
      td.append(actions);
      tr.append(td);
      tbody.append(tr);
    }
    tr.querySelector('.state').textContent = a.paused ? 'paused' : 'active';
    tr.querySelector('.live').textContent = String(a.live_tokens);
    usageBar(tr.querySelector('.five-hour'), a.usage && a.usage.five_hour, a.usage);
    usageBar(tr.querySelector('.seven-day'), a.usage && a.usage.seven_day, a.usage);
    tr.querySelector('.approved').textContent = when(a.last_approved_at);
    tr.querySelector('.failure').textContent = a.last_failure_at
      ? `${when(a.last_failure_at)}: ${a.last_failure || ''}` : '—';
    const actions = tr.querySelector('.actions');
    const wanted = a.paused ? 'resume' : 'pause';
    if (!actions.querySelector(`.${wanted}`)) {
      actions.replaceChildren(button(a.paused ? 'Resume' : 'Pause', wanted, () =>
        act(`account-${a.id}`, `${a.paused ? 'Resume' : 'Pause'} account ${accountLabel(a.id)}`,
          () => api('POST', `/v1/accounts/${a.id}/${wanted}`))));
    }
  }
  $('#accounts-empty').hidden = accounts.length > 0;
  $('#accounts').hidden = accounts.length === 0;
}

function showKey(name, key) {
  $('#client-key-name').textContent = name;
  $('#client-key-value').textContent = key;
  $('#client-key').hidden = false;
  $('#client-key-copy').focus();
}

// The latest changes to clients and accounts (admin_events), newest first: who, what, when.
function renderChanges(changes) {
  const tbody = $('#changes tbody');
  const rows = changes.map((e) => {
    const tr = document.createElement('tr');
    tr.dataset.event = String(e.id);
    const [kind, id] = e.subject.split(':');
    const what = kind === 'account' ? `account ${accountLabel(Number(id))}`
      : `client ${(state.clients.get(id) || {}).name || id}`;
    tr.append(cell('When', `${when(e.at)} (${e.at.slice(0, 19).replace('T', ' ')} UTC)`, 'at'),
      cell('Who', e.actor, 'actor'), cell('What', what, 'subject'),
      cell('Change', e.action.replace('_', ' '), 'action'), cell('Detail', e.detail || '', 'detail'));
    return tr;
  });
  tbody.replaceChildren(...rows);
  $('#changes-empty').hidden = changes.length > 0;
  $('#changes').hidden = changes.length === 0;
}

function renderClients(clients) {
  const tbody = $('#clients tbody');
  const wanted = new Set(clients.map((c) => c.client_id));
  for (const tr of [...tbody.children]) if (!wanted.has(tr.dataset.client)) tr.remove();
  for (const c of clients) {
    let tr = tbody.querySelector(`tr[data-client="${c.client_id}"]`);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.client = c.client_id;
      tr.append(cell('Client', c.name, 'name'), cell('Scopes', '', 'scopes'),
        cell('Accounts', '', 'accounts'), cell('Approval', '', 'approval'),
        cell('State', '', 'state'), cell('Last used', '', 'used'));
      const td = cell('Actions');
      const actions = document.createElement('div');
      actions.className = 'actions';
      const id = `client-${c.client_id}`;
      actions.append(
        button('Rotate key', 'rotate', () => act(id, `Rotate the key of ${c.name}`, async () => {
          const r = await api('POST', `/v1/clients/${c.client_id}/rotate-key`);
          showKey(c.name, r.client_key);
          return r;
        })),
        button('Disable', 'toggle', () => {
          const current = state.clients.get(c.client_id);
          const verb = current && current.disabled ? 'enable' : 'disable';
          act(id, `${verb} ${c.name}`, () => api('POST', `/v1/clients/${c.client_id}/${verb}`));
        }),
        button('Edit', 'edit', () => {
          const current = state.clients.get(c.client_id) || c;
          const scopes = window.prompt('Allowed scopes (space-separated; empty: any)', current.scopes.join(' '));
          if (scopes === null) return;
          const accounts = window.prompt('Allowed account ids (space-separated; empty: any)', current.accounts.join(' '));
          if (accounts === null) return;
          const auto = window.confirm('Approve its requests without an operator?');
          act(id, `Edit ${c.name}`, () => api('PATCH', `/v1/clients/${c.client_id}`, {
            scopes: scopes.split(/\s+/).filter(Boolean),
            accounts: accounts.split(/\s+/).filter(Boolean).map(Number),
            auto_approve: auto,
          }));
        }),
      );
      td.append(actions);
      tr.append(td);
      tbody.append(tr);
    }
    tr.querySelector('.scopes').textContent = c.scopes.join(' ') || 'any';
    tr.querySelector('.accounts').textContent = c.accounts.map(accountLabel).join(', ') || 'any';
    tr.querySelector('.approval').textContent = c.auto_approve ? 'automatic' : 'operator';
    tr.querySelector('.state').textContent = c.disabled ? 'disabled' : 'active';
    tr.querySelector('.used').textContent = when(c.last_used_at);
    tr.querySelector('.toggle').textContent = c.disabled ? 'Enable' : 'Disable';
  }
  $('#clients-empty').hidden = clients.length > 0;
  $('#clients').hidden = clients.length === 0;
}

async function refresh() {
  if (!state.csrf) return;
  try {
    const o = await api('GET', '/admin/overview');
    state.skew = Date.parse(o.now) - Date.now();
    state.reloginWarningSecs = o.relogin_warning_secs || 0;
    state.facts = new Map(o.accounts.map((a) => [a.id, a]));
    state.clients = new Map(o.clients.map((c) => [c.client_id, c]));
    renderAccounts(o.accounts);
    renderClients(o.clients);
    renderChanges(o.changes || []);
    sync($('#open tbody'), o.open, openRow, updateOpenRow);
    sync($('#recent tbody'), o.recent, recentRow, updateRecentRow);
    $('#open-empty').hidden = o.open.length > 0;
    $('#open').hidden = o.open.length === 0;
    $('#recent-empty').hidden = o.recent.length > 0;
    $('#recent').hidden = o.recent.length === 0;
    $('#open-count').textContent = o.open.length ? `(${o.open.length})` : '';
  } catch (error) {
    if (error.status === 401) { say('Your session ended; sign in again.', 'error'); showSignIn(); return; }
    say(`Cannot refresh (will keep trying): ${error.message}`, 'error');
  }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('#sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const session = await api('POST', '/admin/session', { token: $('#token').value });
      $('#token').value = '';
      say('Signed in.', 'ok');
      signedIn(session);
    } catch (error) {
      say(error.status === 401 ? 'That admin token is not right.' : `Sign-in failed: ${error.message}`, 'error');
      $('#token').select();
    }
  });
  $('#client-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('#client-name').value.trim();
    const body = {
      name,
      scopes: $('#client-scopes').value.split(/\s+/).filter(Boolean),
      accounts: $('#client-accounts').value.split(/\s+/).filter(Boolean).map(Number),
      auto_approve: $('#client-auto').checked,
    };
    try {
      const created = await api('POST', '/v1/clients', body);
      $('#client-form').reset();
      say(`Client ${name} added.`, 'ok');
      showKey(name, created.client_key);
      refresh();
    } catch (error) {
      say(`Adding the client failed: ${error.message}`, 'error');
    }
  });
  $('#client-key-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('#client-key-value').textContent);
      say('The key is on the clipboard.', 'ok');
    } catch (_) {
      say('Copying failed: select the key and copy it.', 'error');
    }
  });
  $('#client-key-done').addEventListener('click', () => {
    $('#client-key-value').textContent = '';
    $('#client-key').hidden = true;
  });
  $('#sign-out').addEventListener('click', async () => {
    try { await api('DELETE', '/admin/session'); } catch (_) { /* signed out anyway */ }
    say('Signed out.', 'ok');
    showSignIn();
  });
  try {
    signedIn(await api('GET', '/admin/session'));
  } catch (error) {
    if (error.status !== 401) say(`Cannot reach the router: ${error.message}`, 'error');
    showSignIn();
  }
});
