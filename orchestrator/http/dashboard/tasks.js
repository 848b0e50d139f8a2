// A workflow execution's tasks as a tree, from their JSON pointers.
//
// A task's ID is its JSON pointer in the document ("/do/1/branch/fork/branches/0/a"):
// its parent is the task whose pointer is the longest proper prefix of it.

/**
 * @param {Array<object>} tasks TaskStatus values (proto3 JSON).
 * @returns {Array<{task: object, children: Array}>} The roots, children nested, in
 *   document order.
 */
export function taskTree(tasks) {
  const nodes = new Map(tasks.map((task) => [task.id, { task, children: [] }]));
  const roots = [];
  for (const node of nodes.values()) {
    const parent = parentOf(node.task.id, nodes);
    (parent ? parent.children : roots).push(node);
  }
  const sort = (list) => {
    list.sort((a, b) => comparePointers(a.task.id, b.task.id));
    for (const node of list) sort(node.children);
    return list;
  };
  return sort(roots);
}

function parentOf(id, nodes) {
  let at = id.lastIndexOf("/");
  while (at > 0) {
    const candidate = nodes.get(id.slice(0, at));
    if (candidate) return candidate;
    at = id.lastIndexOf("/", at - 1);
  }
  return null;
}

/** Document order: segment by segment, array indexes compared as numbers. */
export function comparePointers(a, b) {
  const left = a.split("/");
  const right = b.split("/");
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] === right[i]) continue;
    const x = Number(left[i]);
    const y = Number(right[i]);
    const indexes = left[i] !== "" && right[i] !== "" && Number.isInteger(x) && Number.isInteger(y);
    if (indexes) return x - y;
    return left[i] < right[i] ? -1 : 1;
  }
  return left.length - right.length;
}
