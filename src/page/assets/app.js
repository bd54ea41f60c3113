// pan123-webdav's browser page. Hand-written, no build step: it enhances the listing the
// server rendered (which works without it) with sorting, filtering, progressive rendering,
// previews and players, uploads, folder changes and share links. Every change is a WebDAV
// request (PUT, MKCOL, MOVE, DELETE) with the credentials the browser already holds.
(function () {
  'use strict';
  var table = document.getElementById('list');
  if (!table) { return; }
  var words = {};
  try { words = JSON.parse(document.getElementById('words').textContent); } catch (e) { words = {}; }
  function t(key) {
    var s = words[key] || key;
    for (var i = 1; i < arguments.length; i++) { s = s.split('{' + (i - 1) + '}').join(String(arguments[i])); }
    return s;
  }
  var lang = document.documentElement.lang || 'en';
  var tbody = table.tBodies[0];
  var canWrite = table.dataset.write === '1';
  var canShare = table.dataset.share === '1';
  var folder = document.querySelector('base').getAttribute('href');
  // Absolute URLs from the origin: a page opened as http://user:pass@host/ has those
  // credentials in its base URL, and fetch refuses such URLs.
  var origin = location.origin;
  function abs(href) { return new URL(href, origin + folder).href; }
  var api = table.dataset.api;
  var up = tbody.querySelector('tr.up');
  var items = [];
  var sortKey = 'n', sortDir = 1, generation = 0;
  var filterBox = document.getElementById('filter');
  var count = document.getElementById('count');

  var kinds = {
    image: /\.(jpe?g|png|gif|webp|svg|bmp|avif|ico)$/i,
    video: /\.(mp4|m4v|webm|ogv|mov|mkv)$/i,
    audio: /\.(mp3|m4a|aac|ogg|oga|opus|flac|wav)$/i,
    text: /\.(txt|md|log|json|xml|csv|srt|vtt|ass|ini|toml|ya?ml|nfo|cue|sh|py|rs|go|js|css|c|h|java)$/i
  };
  function kindOf(name) {
    for (var k in kinds) { if (kinds[k].test(name)) { return k; } }
    return null;
  }

  function readRows(body) {
    var out = [];
    var rows = body.querySelectorAll('tr');
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (r.classList.contains('up')) { continue; }
      var a = r.querySelector('a');
      if (!a) { continue; }
      var dir = r.classList.contains('d');
      var name = a.textContent;
      if (dir) { name = name.replace(/\/$/, ''); }
      out.push({ name: name, lower: name.toLowerCase(), dir: dir, href: a.getAttribute('href'),
        size: Number(r.dataset.s || 0), m: Number(r.dataset.m || 0) });
    }
    return out;
  }

  function human(n) {
    var units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'], u = 0, v = n;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    if (u === 0) { return n + ' B'; }
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[u];
  }
  // Local time as YYYY-MM-DD HH:MM: unambiguous in both languages.
  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function when(secs) {
    if (!secs) { return ''; }
    var d = new Date(secs * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  function compare(a, b) {
    if (a.dir !== b.dir) { return a.dir ? -1 : 1; }
    var c = 0;
    if (sortKey === 's') { c = a.size - b.size; }
    else if (sortKey === 'm') { c = a.m - b.m; }
    if (c === 0) { c = a.name < b.name ? -1 : (a.name > b.name ? 1 : 0); }
    return c * sortDir;
  }

  function button(act, label, item) {
    var b = document.createElement('button');
    b.type = 'button';
    b.dataset.act = act;
    b.textContent = label;
    b.setAttribute('aria-label', label + ': ' + item.name);
    return b;
  }

  function row(item) {
    var tr = document.createElement('tr');
    if (item.dir) { tr.className = 'd'; }
    tr.dataset.name = item.name;
    var td = document.createElement('td');
    var a = document.createElement('a');
    a.href = item.href;
    a.textContent = item.dir ? item.name + '/' : item.name;
    if (!item.dir) {
      var kind = kindOf(item.name);
      if (kind) { a.dataset.kind = kind; } else { a.setAttribute('download', ''); }
    }
    td.appendChild(a);
    tr.appendChild(td);
    td = document.createElement('td');
    td.textContent = item.dir ? '' : human(item.size);
    tr.appendChild(td);
    td = document.createElement('td');
    td.textContent = when(item.m);
    tr.appendChild(td);
    td = document.createElement('td');
    td.className = 'act';
    if (!item.dir && canShare) { td.appendChild(button('share', t('share'), item)); }
    if (canWrite) {
      td.appendChild(button('rename', t('rename'), item));
      td.appendChild(button('delete', t('delete'), item));
    }
    tr.appendChild(td);
    tr._item = item;
    return tr;
  }

  // Rows are added in slices so a folder of 10,000 entries shows its first rows at once and
  // stays responsive while the rest follow.
  function render() {
    var gen = ++generation;
    var needle = filterBox ? filterBox.value.trim().toLowerCase() : '';
    var shown = items.filter(function (it) { return !needle || it.lower.indexOf(needle) >= 0; });
    shown.sort(compare);
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    if (up) { tbody.appendChild(up); }
    count.textContent = needle ? t('shown', shown.length, items.length) : t('items', items.length);
    var i = 0;
    function slice(n) {
      if (gen !== generation) { return; }
      var frag = document.createDocumentFragment();
      var end = Math.min(shown.length, i + n);
      for (; i < end; i++) { frag.appendChild(row(shown[i])); }
      tbody.appendChild(frag);
      if (i < shown.length) { setTimeout(function () { slice(1000); }, 0); }
      else { table.dataset.rendered = String(gen); }
    }
    slice(300);
  }

  var heads = table.tHead.querySelectorAll('th[data-k]');
  function markSort() {
    for (var i = 0; i < heads.length; i++) {
      var th = heads[i];
      if (th.dataset.k === sortKey) { th.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending'); }
      else { th.removeAttribute('aria-sort'); }
    }
  }
  Array.prototype.forEach.call(heads, function (th) {
    th.querySelector('button').addEventListener('click', function () {
      if (sortKey === th.dataset.k) { sortDir = -sortDir; } else { sortKey = th.dataset.k; sortDir = 1; }
      markSort();
      render();
    });
  });
  if (filterBox) { filterBox.addEventListener('input', render); }

  // --- messages and dialogs ---
  var msg = document.createElement('p');
  msg.id = 'msg';
  msg.setAttribute('role', 'alert');
  table.parentNode.insertBefore(msg, table);
  function say(text) { msg.textContent = text; }

  var viewer = document.getElementById('viewer');
  function openDialog(build) {
    while (viewer.firstChild) { viewer.removeChild(viewer.firstChild); }
    build(viewer);
    if (viewer.showModal) { if (!viewer.open) { viewer.showModal(); } } else { viewer.setAttribute('open', ''); }
  }
  function closeDialog() {
    var media = viewer.querySelectorAll('video, audio');
    for (var i = 0; i < media.length; i++) { media[i].pause(); media[i].removeAttribute('src'); media[i].load(); }
    if (viewer.close && viewer.open) { viewer.close(); } else { viewer.removeAttribute('open'); }
  }
  viewer.addEventListener('close', function () {
    var media = viewer.querySelectorAll('video, audio');
    for (var i = 0; i < media.length; i++) { media[i].pause(); }
  });
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text != null) { e.textContent = text; }
    return e;
  }
  function closeButton() {
    var b = el('button', { type: 'button', id: 'close' }, t('close'));
    b.addEventListener('click', closeDialog);
    return b;
  }
  // A question with OK and Cancel (and a text field or a choice): resolves with the answer,
  // or null when cancelled.
  function ask(question, opts) {
    opts = opts || {};
    return new Promise(function (resolve) {
      openDialog(function (d) {
        var form = el('form', { method: 'dialog', id: 'ask' });
        var label = el('label', { for: 'ask-input', id: 'ask-q' }, question);
        form.appendChild(label);
        var input = null;
        if (opts.choices) {
          input = el('select', { id: 'ask-input' });
          opts.choices.forEach(function (c) { input.appendChild(el('option', { value: c[0] }, c[1])); });
        } else if (opts.value != null) {
          input = el('input', { id: 'ask-input', type: 'text', size: '40' });
          input.value = opts.value;
        }
        if (input) { form.appendChild(input); } else { label.removeAttribute('for'); }
        var ok = el('button', { type: 'submit', id: 'ask-ok' }, opts.okLabel || t('ok'));
        var cancel = el('button', { type: 'button', id: 'ask-cancel' }, t('cancel'));
        var done = false;
        function finish(v) { if (!done) { done = true; closeDialog(); resolve(v); } }
        form.addEventListener('submit', function (ev) { ev.preventDefault(); finish(input ? input.value : true); });
        cancel.addEventListener('click', function () { finish(null); });
        viewer.addEventListener('cancel', function () { finish(null); }, { once: true });
        var buttons = el('div', { class: 'buttons' });
        buttons.appendChild(ok);
        buttons.appendChild(cancel);
        form.appendChild(buttons);
        d.appendChild(form);
        setTimeout(function () { (input || ok).focus(); if (input && input.select) { input.select(); } }, 0);
      });
    });
  }

  // --- open: preview, play, download ---
  function preview(item, kind) {
    openDialog(function (d) {
      var head = el('div', { class: 'viewer-head' });
      head.appendChild(el('strong', {}, item.name));
      var dl = el('a', { href: abs(item.href), download: '' }, t('download'));
      head.appendChild(dl);
      head.appendChild(closeButton());
      d.appendChild(head);
      var body;
      if (kind === 'image') {
        body = el('img', { src: abs(item.href), alt: item.name });
      } else if (kind === 'video') {
        body = el('video', { src: abs(item.href), controls: '', preload: 'metadata', id: 'player' });
      } else if (kind === 'audio') {
        body = el('audio', { src: abs(item.href), controls: '', preload: 'metadata', id: 'player' });
      } else {
        body = el('pre', { id: 'text' }, '…');
        fetch(abs(item.href), { headers: { Range: 'bytes=0-262143' }, credentials: 'same-origin' })
          .then(function (r) { return r.text(); })
          .then(function (s) { body.textContent = s; })
          .catch(function (e) { body.textContent = t('error') + ': ' + e; });
      }
      d.appendChild(body);
    });
  }

  tbody.addEventListener('click', function (ev) {
    var target = ev.target;
    var tr = target.closest('tr');
    if (!tr || !tr._item) { return; }
    var item = tr._item;
    if (target.tagName === 'A' && target.dataset.kind && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey) {
      ev.preventDefault();
      preview(item, target.dataset.kind);
    } else if (target.dataset.act === 'delete') {
      remove(item);
    } else if (target.dataset.act === 'rename') {
      rename(item);
    } else if (target.dataset.act === 'share') {
      share(item);
    }
  });

  // --- keyboard: "/" to filter, arrows between rows ---
  document.addEventListener('keydown', function (ev) {
    if (ev.target && /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName)) { return; }
    if (ev.key === '/' && filterBox) { ev.preventDefault(); filterBox.focus(); return; }
    if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') { return; }
    var links = tbody.querySelectorAll('td:first-child a');
    if (!links.length) { return; }
    var at = Array.prototype.indexOf.call(links, document.activeElement);
    var next = ev.key === 'ArrowDown' ? at + 1 : (at < 0 ? links.length - 1 : at - 1);
    if (next >= 0 && next < links.length) { ev.preventDefault(); links[next].focus(); }
  });

  // --- refresh the rows from the server (same cached listing as PROPFIND) ---
  function refresh() {
    return fetch(origin + folder, { headers: { Accept: 'text/html' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var body = doc.querySelector('#list tbody');
        if (body) { items = readRows(body); render(); }
      });
  }

  function dav(method, url, headers) {
    return fetch(url, { method: method, headers: headers || {}, credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) { throw new Error(method + ' ' + r.status + ' ' + r.statusText); }
      return r;
    });
  }

  function remove(item) {
    ask(t('confirmDelete', item.name), { okLabel: t('delete') }).then(function (yes) {
      if (!yes) { return; }
      return dav('DELETE', abs(item.href)).then(refresh);
    }).catch(function (e) { say(t('error') + ': ' + e.message); });
  }

  function rename(item) {
    ask(t('newName', item.name), { value: item.name }).then(function (to) {
      if (!to || to === item.name) { return; }
      var dest = new URL(to.split('/').map(encodeURIComponent).join('/') + (item.dir ? '/' : ''),
        new URL(origin + folder)).href;
      return dav('MOVE', abs(item.href), { Destination: dest, Overwrite: 'F' }).then(refresh);
    }).catch(function (e) { say(t('error') + ': ' + e.message); });
  }

  function share(item) {
    var choices = [['3600', t('h1')], ['86400', t('d1')], ['604800', t('d7')]];
    ask(t('lifetime'), { choices: choices, okLabel: t('makeLink') }).then(function (ttl) {
      if (!ttl) { return; }
      var path = new URL(abs(item.href)).pathname;
      var below = path.slice(table.dataset.base.length);
      return fetch(origin + api + 'share?path=' + encodeURIComponent(below) + '&ttl=' + ttl,
        { method: 'POST', credentials: 'same-origin' })
        .then(function (r) {
          if (!r.ok) { throw new Error(r.status + ' ' + r.statusText); }
          return r.json();
        })
        .then(function (j) {
          openDialog(function (d) {
            d.appendChild(el('label', { for: 'share-url' }, t('linkReady')));
            var input = el('input', { id: 'share-url', type: 'text', readonly: '', size: '60' });
            input.value = j.url;
            d.appendChild(input);
            d.appendChild(closeButton());
            setTimeout(function () { input.focus(); input.select(); }, 0);
          });
          if (navigator.clipboard && navigator.clipboard.writeText) {
            navigator.clipboard.writeText(j.url).then(function () { say(t('copied')); }, function () {});
          }
        });
    }).catch(function (e) { say(t('error') + ': ' + e.message); });
  }

  // --- uploads: picker and drag-and-drop, one PUT each with its progress ---
  var queueList = document.getElementById('queue');
  function upload(files) {
    var pending = files.length;
    if (!pending) { return; }
    Array.prototype.forEach.call(files, function (file) {
      var li = el('li');
      li.dataset.name = file.name;
      li.appendChild(el('span', { class: 'qname' }, file.name + ' '));
      var bar = el('progress', { max: '100', value: '0', 'aria-label': file.name });
      li.appendChild(bar);
      var state = el('span', { class: 'qstate' }, '');
      li.appendChild(state);
      queueList.appendChild(li);
      var xhr = new XMLHttpRequest();
      xhr.open('PUT', new URL(encodeURIComponent(file.name), new URL(origin + folder)).href);
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); } };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) { bar.value = 100; state.textContent = ' ' + t('sent'); li.dataset.state = 'sent'; }
        else { state.textContent = ' ' + t('failed') + ' (' + xhr.status + ')'; li.dataset.state = 'failed'; }
        if (--pending === 0) { watchQueue(0); }
      };
      xhr.onerror = function () {
        state.textContent = ' ' + t('failed'); li.dataset.state = 'failed';
        if (--pending === 0) { watchQueue(0); }
      };
      xhr.send(file);
    });
  }
  // After the PUTs, the gateway's own queue tells what became of each file.
  function watchQueue(round) {
    fetch(origin + api + 'queue?path=' + encodeURIComponent(table.dataset.path), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : { uploads: [] }; })
      .then(function (j) {
        var busy = false;
        (j.uploads || []).forEach(function (u) {
          var lis = queueList.querySelectorAll('li');
          for (var i = 0; i < lis.length; i++) {
            if (lis[i].dataset.name === u.name && lis[i].dataset.state !== 'failed') {
              lis[i].dataset.state = u.state;
              lis[i].querySelector('.qstate').textContent = ' ' + t(u.state);
            }
          }
          if (u.state === 'queued' || u.state === 'uploading') { busy = true; }
        });
        refresh();
        if (busy && round < 120) { setTimeout(function () { watchQueue(round + 1); }, 1000); }
        else {
          var lis = queueList.querySelectorAll('li');
          for (var i = 0; i < lis.length; i++) {
            if (lis[i].dataset.state === 'sent') { lis[i].dataset.state = 'done'; lis[i].querySelector('.qstate').textContent = ' ' + t('done'); }
          }
        }
      })
      .catch(function () { refresh(); });
  }
  var pick = document.getElementById('pick');
  if (pick) { pick.addEventListener('change', function () { upload(pick.files); pick.value = ''; }); }
  var drop = document.getElementById('drop');
  if (canWrite && drop) {
    document.addEventListener('dragover', function (ev) {
      if (ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, 'Files') >= 0) {
        ev.preventDefault(); drop.hidden = false;
      }
    });
    document.addEventListener('dragleave', function (ev) { if (!ev.relatedTarget) { drop.hidden = true; } });
    document.addEventListener('drop', function (ev) {
      if (!ev.dataTransfer || !ev.dataTransfer.files.length) { return; }
      ev.preventDefault(); drop.hidden = true; upload(ev.dataTransfer.files);
    });
  }
  var mkdir = document.getElementById('mkdir');
  if (mkdir) {
    mkdir.addEventListener('click', function () {
      ask(t('folderName'), { value: '' }).then(function (name) {
        if (!name) { return; }
        return dav('MKCOL', new URL(encodeURIComponent(name) + '/', new URL(origin + folder)).href).then(refresh);
      }).catch(function (e) { say(t('error') + ': ' + e.message); });
    });
  }

  items = readRows(tbody);
  render();
})();
