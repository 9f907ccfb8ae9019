/** Time-outs kept in order without a timer or an allocation per entry (used by the upstream client). */

/** A node of a DeadlineList: linked through its own fields, so a list costs no allocation per entry. */
export interface Listed<T> {
  deadline: number;
  prev: T | undefined;
  next: T | undefined;
  listed: boolean;
}

/** A doubly linked list in deadline order, as long as entries are appended with non-decreasing deadlines. */
export class DeadlineList<T extends Listed<T>> {
  head: T | undefined = undefined;
  private tail: T | undefined = undefined;
  size = 0;

  push(node: T): void {
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    node.listed = true;
    this.size++;
  }

  remove(node: T): void {
    if (!node.listed) return;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    node.listed = false;
    this.size--;
  }
}
