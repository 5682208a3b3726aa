// Lists value exports (functions, constants, classes) of src/ that no other file uses (src/, test/, scripts/), with the TypeScript
// compiler's own symbol resolution, and exits 1 when there is one: an export nobody imports is dead
// code or a name that should not be exported. Run by pretest, so CI fails on a new one.
// Entry points consumed by name from dist/ (not visible to the compiler) are listed in KEPT.
import ts from 'typescript';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

// The repository by default; a test points it at a small fixture tree.
const root = resolve(process.argv[2] ?? resolve(import.meta.dirname, '..'));
/** `file:name` pairs used from outside the TypeScript program (bin/, scripts/build.mjs output). */
const KEPT = new Set([
  'src/cli/launch.ts:launch', 'src/cli/launch.ts:makeWalCodeCache', 'src/cli/launch.ts:WAL_CODE_CACHE',
  'src/cli/launch.ts:WAL_BUNDLE_HEAD', 'src/cli/launch.ts:WAL_BUNDLE_TAIL',
  'src/cli/fast-path.ts:walArchiveScript', 'src/cli/fast-path.ts:walRestoreScript',
]);

const walk = (dir, pick) =>
  !existsSync(dir) ? [] : readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'node_modules' ? [] : walk(join(dir, e.name), pick)) : pick(e.name) ? [join(dir, e.name)] : [],
  );
const files = [
  ...walk(join(root, 'src'), (n) => n.endsWith('.ts')),
  ...walk(join(root, 'test'), (n) => /\.(ts|mjs)$/.test(n)),
  ...walk(join(root, 'scripts'), (n) => n.endsWith('.mjs')),
];
const config = ts.getParsedCommandLineOfConfigFile(join(root, 'test', 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
if (!config) {
  process.stderr.write(`unused-exports: cannot read ${join(root, 'test', 'tsconfig.json')}\n`);
  process.exit(1);
}
const program = ts.createProgram(files, { ...config.options, noEmit: true });
const checker = program.getTypeChecker();

const original = (s) => (s && s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
/** Symbol → the files that use it (other than its own). */
const usedBy = new Map();
const mark = (symbol, file) => {
  const s = original(symbol);
  if (!s) return;
  if (!usedBy.has(s)) usedBy.set(s, new Set());
  usedBy.get(s).add(file);
};

for (const sf of program.getSourceFiles()) {
  if (sf.fileName.includes('/node_modules/')) continue;
  const visit = (node) => {
    if (ts.isIdentifier(node)) mark(checker.getSymbolAtLocation(node), sf.fileName);
    // `const { a } = await import('./x.js')`: the property of the module's type is the export.
    if (ts.isBindingElement(node) && ts.isObjectBindingPattern(node.parent)) {
      const name = (node.propertyName ?? node.name).getText(sf);
      const prop = checker.getTypeAtLocation(node.parent).getProperty(name);
      if (prop) mark(prop, sf.fileName);
    }
    // `mod[cond ? 'a' : 'b']`: each string literal in the index names a property.
    if (ts.isElementAccessExpression(node)) {
      const type = checker.getTypeAtLocation(node.expression);
      const literals = (n) => (ts.isStringLiteral(n) ? [n.text] : n.getChildren(sf).flatMap(literals));
      for (const name of literals(node.argumentExpression)) {
        const prop = type.getProperty(name);
        if (prop) mark(prop, sf.fileName);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

const unused = [];
for (const sf of program.getSourceFiles()) {
  const rel = relative(root, sf.fileName);
  if (!rel.startsWith('src/')) continue;
  const moduleSymbol = checker.getSymbolAtLocation(sf);
  if (!moduleSymbol) continue;
  for (const exp of checker.getExportsOfModule(moduleSymbol)) {
    if (KEPT.has(`${rel}:${exp.name}`)) continue;
    // Types exported to name a signature's parts cost nothing at run time; values are the dead code.
    if (!(original(exp).flags & ts.SymbolFlags.Value)) continue;
    const users = usedBy.get(original(exp)) ?? new Set();
    users.delete(sf.fileName);
    if (users.size === 0) unused.push(`${rel}: ${exp.name}`);
  }
}
if (unused.length) {
  process.stderr.write(`unused-exports: ${unused.length} export(s) nobody imports (remove them, or the \`export\`): ${unused.join(', ')}\n`);
  process.exit(1);
}
