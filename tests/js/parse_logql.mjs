// Parses LogQL queries with Grafana's own LogQL grammar (@grafana/lezer-logql), the grammar
// Grafana's Loki query editor uses. Lezer parsers never throw: they recover and leave error
// nodes in the tree, so every error node counts as a syntax error.
//
// Input (stdin): JSON array of {"id": string, "expr": string}.
// Output (stdout): JSON array of {"id", "errors": [{"from", "to", "near"}]}, same order.
// Exit code: 0 if every query parsed cleanly, 1 if any has an error, 2 on bad input.
import { parser } from "@grafana/lezer-logql";

function errorsOf(expr) {
  const errors = [];
  const tree = parser.parse(expr);
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, near: expr.slice(Math.max(0, node.from - 10), node.to + 10) });
      }
    },
  });
  return errors;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let queries;
try {
  queries = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (!Array.isArray(queries)) throw new Error("expected a JSON array");
} catch (err) {
  process.stderr.write(`parse_logql: bad input: ${err.message}\n`);
  process.exit(2);
}
const results = queries.map((q) => ({ id: q.id, errors: errorsOf(q.expr) }));
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
process.exit(results.some((r) => r.errors.length > 0) ? 1 : 0);
