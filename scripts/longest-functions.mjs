#!/usr/bin/env node
/**
 * The longest functions in the TypeScript sources, by lines from the declaration to its closing brace (comments
 * and blank lines inside included), so a refactor can say what the longest function is now.
 *   node scripts/longest-functions.mjs [--top N] [--max LINES] [DIR...]   (default: --top 10 src)
 * With --max, exits 1 when a function is longer (usable as a check). Counts function declarations, methods,
 * constructors, accessors, and arrow functions / function expressions longer than one line (named by the variable
 * or property they are assigned to, else by their position).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

function parseArgs(argv) {
  const opts = { top: 10, max: undefined, dirs: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') opts.top = Number(argv[++i]);
    else if (argv[i] === '--max') opts.max = Number(argv[++i]);
    else opts.dirs.push(argv[i]);
  }
  if (!opts.dirs.length) opts.dirs.push('src');
  return opts;
}

function* tsFiles(dir) {
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) yield* tsFiles(full);
    else if (full.endsWith('.ts') && !full.endsWith('.d.ts')) yield full;
  }
}

function nameOf(node, sf) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (node.name && (ts.isStringLiteral(node.name) || ts.isPrivateIdentifier(node.name))) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) && parent.name) {
    return parent.name.getText(sf);
  }
  const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
  return `<anonymous at line ${line + 1}>`;
}

function functionsIn(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(node.end).line + 1;
      const lines = end - start + 1;
      const arrowish = ts.isArrowFunction(node) || ts.isFunctionExpression(node);
      if (!arrowish || lines > 1) {
        const cls = ts.findAncestor(node.parent, ts.isClassLike);
        const prefix = cls?.name && !arrowish ? `${cls.name.text}.` : '';
        found.push({ name: prefix + nameOf(node, sf), file, start, end, lines });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

const opts = parseArgs(process.argv.slice(2));
const all = opts.dirs.flatMap((d) => [...tsFiles(d)]).flatMap(functionsIn).sort((a, b) => b.lines - a.lines);
for (const f of all.slice(0, opts.top)) console.log(`${String(f.lines).padStart(4)}  ${f.name}  ${f.file}:${f.start}-${f.end}`);
if (opts.max !== undefined) {
  const over = all.filter((f) => f.lines > opts.max);
  if (over.length) {
    console.error(`${over.length} function(s) longer than ${opts.max} lines`);
    process.exitCode = 1;
  }
}
