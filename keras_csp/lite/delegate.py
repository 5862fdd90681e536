"""Which ops a delegate (XNNPACK on the CPU) leaves to the interpreter itself."""


def undelegated_nodes(interpreter):
    """The nodes of `interpreter` (an Interpreter of any backend, with its default delegates) that
    its delegate leaves to the interpreter: `{"op_name", "index", "outputs", "output_names"}`.

    The node list keeps the ops a delegate took over, next to the DELEGATE nodes that run them.
    Walking back from the model's outputs, a tensor no DELEGATE node produces must come from an
    op the interpreter runs itself.
    """
    interpreter.allocate_tensors()  # the delegate takes its nodes over here
    nodes = interpreter._get_ops_details()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    from_delegate = {t for n in delegates for t in n["outputs"]}
    producer = {t: n for n in nodes if n["op_name"] != "DELEGATE" for t in n["outputs"]}
    needed = [d["index"] for d in interpreter.get_output_details()]
    needed += [t for n in delegates for t in n["inputs"]]
    seen, outside = set(), {}  # outside: node index -> node
    while needed:
        t = needed.pop()
        if t in seen or t < 0 or t in from_delegate or t not in producer:
            continue  # model inputs and constants have no producer
        seen.add(t)
        node = producer[t]
        if node["index"] not in outside:
            outside[node["index"]] = node
            needed.extend(node["inputs"])
    return [
        {
            "op_name": outside[i]["op_name"],
            "index": i,
            "outputs": [int(t) for t in outside[i]["outputs"]],
            "output_names": [names.get(int(t), "") for t in outside[i]["outputs"]],
        }
        for i in sorted(outside)
    ]

