#!/usr/bin/env node
// Table of contents for every README over 20 KB, between `<!-- toc -->` and `<!-- tocstop -->`
// (inserted before the first `## ` heading when missing). Headings `##` and `###`, GitHub anchors.
//
//   node scripts/readme-toc.mjs           # write the tables
//   node scripts/readme-toc.mjs --check   # exit 1 when one is missing or out of date (run by the tests)
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const LIMIT = 20 * 1024;
const START = '<!-- toc -->';
const END = '<!-- tocstop -->';

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
export function slugger() {
  const seen = new Map();
  return (text) => {
    const base = text
      .replace(/`/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}-${n}`;
  };
}

export function tocOf(markdown) {
  const slug = slugger();
  const lines = [];
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (/^```/.test(line)) fence = !fence;
    if (fence) continue;
    const m = /^(#{2,3}) (.+?)\s*$/.exec(line);
    if (!m) continue;
    const text = m[2];
    const anchor = slug(text);
    if (text === 'Contents') continue;
    lines.push(`${m[1].length === 3 ? '  ' : ''}- [${text.replace(/([[\]])/g, '\\$1')}](#${anchor})`);
  }
  return lines.join('\n');
}

export function withToc(markdown) {
  // The table itself is not part of what it lists.
  const stripped = markdown.includes(START)
    ? markdown.slice(0, markdown.indexOf(START)) + markdown.slice(markdown.indexOf(END) + END.length)
    : markdown;
  const block = `${START}\n\n${tocOf(stripped)}\n\n${END}`;
  if (markdown.includes(START)) {
    return markdown.slice(0, markdown.indexOf(START)) + block + markdown.slice(markdown.indexOf(END) + END.length);
  }
  const at = markdown.search(/^## /m);
  if (at < 0) return markdown;
  return `${markdown.slice(0, at)}## Contents\n\n${block}\n\n${markdown.slice(at)}`;
}

export function readmes() {
  const out = [join(root, 'README.md')];
  for (const p of readdirSync(join(root, 'packages'))) {
    const f = join(root, 'packages', p, 'README.md');
    if (existsSync(f)) out.push(f);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const file of readmes()) {
    const text = readFileSync(file, 'utf8');
    if (Buffer.byteLength(text) <= LIMIT && !text.includes(START)) continue;
    const next = withToc(text);
    if (next === text) continue;
    if (check) {
      console.error(`${relative(root, file)}: table of contents missing or out of date; run node scripts/readme-toc.mjs`);
      stale++;
    } else {
      writeFileSync(file, next);
      console.log(`${relative(root, file)}: table of contents written`);
    }
  }
  process.exitCode = stale > 0 ? 1 : 0;
}
