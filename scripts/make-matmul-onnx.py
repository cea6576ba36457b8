"""Writes scripts/matmul.onnx: C = A @ B for float32 square matrices of any size, the graph that
scripts/bench-runtime.ts times to measure this machine's matrix-multiply peak through ONNX Runtime.
Run: /usr/bin/python3 scripts/make-matmul-onnx.py"""
import os
import onnx
from onnx import TensorProto, helper

a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["n", "n"])
b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["n", "n"])
c = helper.make_tensor_value_info("C", TensorProto.FLOAT, ["n", "n"])
graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul", [a, b], [c])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
onnx.checker.check_model(model)
onnx.save(model, os.path.join(os.path.dirname(os.path.abspath(__file__)), "matmul.onnx"))
