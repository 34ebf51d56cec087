# objects.py - an object-heavy Python workload for tools/realprogs.
#
# Run with PYTHONMALLOC=malloc and PYTHONHASHSEED=0 so that every object goes
# through malloc and the run is the same each time: classes, dicts, lists,
# strings, tuples and a sort, with objects freed along the way.


class Node:
    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.kids = []


def main():
    table = {}
    root = Node(0, "root")
    for i in range(20000):
        node = Node(i, "v%d" % i)
        table["k%d" % (i % 5000)] = node
        root.kids.append(node)
        if i % 7 == 0:
            root.kids.pop(0)
    pairs = sorted(table.items(), key=lambda kv: kv[1].value)
    words = [tuple(str(i * j) for j in range(4)) for i in range(3000)]
    joined = ",".join("-".join(w) for w in words)
    print(len(table), len(root.kids), pairs[0][0], sum(len(n.value) for n in root.kids), len(joined))


main()
