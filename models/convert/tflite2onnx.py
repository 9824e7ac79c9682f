#!/usr/bin/env python3
"""Convert MediaPipe's Selfie Segmentation TFLite models to ONNX for tract.

Only the operators these two models use are supported; anything else is a hard error,
so a future model change cannot convert silently into something wrong.

The ONNX graph is NCHW end to end (tract is ~40% slower on NHWC input):
  input         float32 [1, 3, H, W]  RGB in [0, 1]
  segment_back  float32 [1, 1, H, W]  person probability (sigmoid already applied)

With --fast-resize every exact 2x half-pixel bilinear upsample is rewritten as
edge-shifted slices, 0.75/0.25 blends and an interleave (Concat + Reshape). The
result is numerically the same function; tract runs it ~35% faster than its Resize.

With --conv-before-resize a bilinear upsample whose only consumer is a 1x1 stride-1
convolution without activation is moved after that convolution: both are linear, one
mixes channels and the other pixels, and a bilinear upsample keeps constants (its
weights sum to 1, at the clamped edges too), so the function is the same up to float
rounding. The decoder of these models reduces channels right after each upsample
(128 -> 24, 24 -> 16, 16 -> 16), so the convolution runs on a quarter of the pixels and
the upsample on fewer channels.

Pitfalls (each measured to cost accuracy when wrong) are in the comments below.
"""

import argparse
import struct
import sys

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

BUILTIN_NAMES = {
    value: name for name, value in vars(tflite.BuiltinOperator).items() if not name.startswith("_")
}

TFLITE_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
}

FUSED_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: None,
    tflite.ActivationFunctionType.RELU: "Relu",
}


class ConversionError(Exception):
    pass


class Converter:
    def __init__(self, model_bytes, fast_resize, conv_before_resize=False):
        self.model = tflite.Model.GetRootAsModel(model_bytes, 0)
        if self.model.SubgraphsLength() != 1:
            raise ConversionError("expected exactly one subgraph")
        self.graph = self.model.Subgraphs(0)
        self.fast_resize = fast_resize
        self.conv_before_resize = conv_before_resize
        # conv op index -> the resize op it is moved in front of (see --conv-before-resize)
        self.deferred_resizes = {}
        self.nodes = []
        self.initializers = []
        self.constants = {}  # tflite tensor index -> numpy array (weights, folded fp16)
        self.unique = 0

    # ---- helpers -------------------------------------------------------------------------

    def fresh(self, hint):
        self.unique += 1
        return f"{hint}_{self.unique}"

    def tensor_name(self, index):
        return f"t{index}"

    def tensor_shape(self, index):
        return [int(d) for d in self.graph.Tensors(index).ShapeAsNumpy()]

    def buffer_array(self, index):
        tensor = self.graph.Tensors(index)
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            return None
        dtype = TFLITE_DTYPES.get(tensor.Type())
        if dtype is None:
            raise ConversionError(f"tensor {index}: unsupported type {tensor.Type()}")
        data = buffer.DataAsNumpy().tobytes()
        return np.frombuffer(data, dtype=dtype).reshape(self.tensor_shape(index))

    def constant(self, index):
        if index in self.constants:
            return self.constants[index]
        array = self.buffer_array(index)
        if array is not None:
            self.constants[index] = array.astype(np.float32) if array.dtype == np.float16 else array
        return self.constants.get(index)

    def add_initializer(self, array, hint):
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type, inputs, outputs, **attributes):
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(op_type), **attributes))

    def activation_input(self, index):
        """Name of an input that is either a graph tensor or a constant (laid out as NCHW)."""
        array = self.constant(index)
        if array is None:
            return self.tensor_name(index)
        if array.ndim == 4:
            array = array.transpose(0, 3, 1, 2)
        elif array.ndim == 1 and array.size > 1:
            array = array.reshape(-1, 1, 1)  # per-channel, broadcast over H and W
        return self.add_initializer(array.astype(np.float32), "const")

    def emit_with_activation(self, op_type, inputs, output_index, fused, output=None, **attributes):
        activation = FUSED_ACTIVATIONS.get(fused, "unsupported")
        if activation == "unsupported":
            raise ConversionError(f"{op_type}: unsupported fused activation {fused}")
        output = output or self.tensor_name(output_index)
        if activation is None:
            self.node(op_type, inputs, [output], **attributes)
        else:
            raw = self.fresh(op_type + "_raw")
            self.node(op_type, inputs, [raw], **attributes)
            self.node(activation, [raw], [output])

    @staticmethod
    def same_pads(in_size, kernel, stride, dilation=1):
        # TensorFlow SAME padding puts the odd pixel at the END (symmetric padding drops IoU to ~0.8).
        out_size = -(-in_size // stride)
        total = max((out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
        return total // 2, total - total // 2

    def conv_pads(self, padding, input_shape, kernel_hw, strides, dilations):
        if padding == tflite.Padding.VALID:
            return [0, 0, 0, 0]
        top, bottom = self.same_pads(input_shape[1], kernel_hw[0], strides[0], dilations[0])
        left, right = self.same_pads(input_shape[2], kernel_hw[1], strides[1], dilations[1])
        return [top, left, bottom, right]

    # ---- operators -----------------------------------------------------------------------

    def builtin(self, op):
        code = self.model.OperatorCodes(op.OpcodeIndex())
        # Newer files keep the op in builtin_code, older ones in deprecated_builtin_code: take the larger.
        return code, max(code.BuiltinCode(), code.DeprecatedBuiltinCode())

    def conv_options(self, op, depthwise):
        options = tflite.DepthwiseConv2DOptions() if depthwise else tflite.Conv2DOptions()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        return options

    def find_resizes_to_defer(self):
        """Resize ops consumed only by a 1x1, stride-1 conv without activation."""
        consumers = {}
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            for k in range(op.InputsLength()):
                consumers.setdefault(op.Inputs(k), []).append(i)
        outputs = {self.graph.Outputs(k) for k in range(self.graph.OutputsLength())}
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            if self.builtin(op)[1] != tflite.BuiltinOperator.RESIZE_BILINEAR:
                continue
            tensor = op.Outputs(0)
            users = consumers.get(tensor, [])
            if tensor in outputs or len(users) != 1:
                continue
            conv = self.graph.Operators(users[0])
            if self.builtin(conv)[1] != tflite.BuiltinOperator.CONV_2D or conv.Inputs(0) != tensor:
                continue
            options = self.conv_options(conv, depthwise=False)
            kernel = self.tensor_shape(conv.Inputs(1))[1:3]
            if (
                kernel == [1, 1]
                and (options.StrideH(), options.StrideW()) == (1, 1)
                and options.FusedActivationFunction() == tflite.ActivationFunctionType.NONE
            ):
                self.deferred_resizes[users[0]] = i

    def convert_conv(self, op, depthwise, input_name=None, output_name=None):
        options = self.conv_options(op, depthwise)
        input_index, weight_index, bias_index = (op.Inputs(i) for i in range(3))
        weights = self.constant(weight_index)
        if depthwise:
            if options.DepthMultiplier() != 1:
                raise ConversionError("depthwise conv with depth multiplier != 1")
            # [1, kh, kw, C] -> [C, 1, kh, kw], one group per channel
            weights = weights.transpose(3, 0, 1, 2)
            group = weights.shape[0]
        else:
            # OHWI -> OIHW
            weights = weights.transpose(0, 3, 1, 2)
            group = 1
        strides = [options.StrideH(), options.StrideW()]
        dilations = [options.DilationHFactor(), options.DilationWFactor()]
        kernel_hw = list(weights.shape[2:])
        pads = self.conv_pads(options.Padding(), self.tensor_shape(input_index), kernel_hw, strides, dilations)
        inputs = [input_name or self.tensor_name(input_index), self.add_initializer(weights, "weight")]
        if bias_index >= 0:
            inputs.append(self.add_initializer(self.constant(bias_index), "bias"))
        self.emit_with_activation(
            "Conv",
            inputs,
            op.Outputs(0),
            options.FusedActivationFunction(),
            output=output_name,
            kernel_shape=kernel_hw,
            strides=strides,
            dilations=dilations,
            pads=pads,
            group=group,
        )

    def convert_binary(self, op, op_type, options_class):
        options = options_class()
        table = op.BuiltinOptions()
        fused = tflite.ActivationFunctionType.NONE
        if table is not None:
            options.Init(table.Bytes, table.Pos)
            fused = options.FusedActivationFunction()
        inputs = [self.activation_input(op.Inputs(i)) for i in range(2)]
        self.emit_with_activation(op_type, inputs, op.Outputs(0), fused)

    def check_resize(self, op):
        options = tflite.ResizeBilinearOptions()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        if options.AlignCorners() or not options.HalfPixelCenters():
            raise ConversionError("RESIZE_BILINEAR: only half_pixel_centers is supported")

    def convert_resize(self, op):
        self.check_resize(op)
        self.emit_resize(
            self.tensor_name(op.Inputs(0)),
            self.tensor_name(op.Outputs(0)),
            self.tensor_shape(op.Inputs(0)),
            self.tensor_shape(op.Outputs(0)),
        )

    def convert_conv_then_resize(self, conv, resize):
        """The 1x1 conv on the resize's input, then the resize of its output (same function)."""
        self.check_resize(resize)
        n, h, w, _ = self.tensor_shape(resize.Inputs(0))
        out_shape = self.tensor_shape(conv.Outputs(0))
        low = self.fresh("conv_before_resize")
        self.convert_conv(conv, depthwise=False, input_name=self.tensor_name(resize.Inputs(0)), output_name=low)
        self.emit_resize(low, self.tensor_name(conv.Outputs(0)), [n, h, w, out_shape[3]], out_shape)

    def emit_resize(self, source, output, in_shape, out_shape):
        """Half-pixel bilinear resize of NCHW `source`; shapes are given NHWC as in TFLite."""
        exact_2x = out_shape[1] == 2 * in_shape[1] and out_shape[2] == 2 * in_shape[2]
        if self.fast_resize and exact_2x:
            n, h, w, c = in_shape
            # Columns first: the interleave along W (one value at a time, the slow one in
            # tract's Concat) then runs on h rows instead of 2h; the one along H moves whole rows.
            columns = self.fresh("upsample_columns")
            self.upsample_2x(source, columns, axis=3, length=w, shape_after=[n, c, h, 2 * w])
            self.upsample_2x(columns, output, axis=2, length=h, shape_after=[n, c, 2 * h, 2 * w])
            return
        scales = np.array(
            [1.0, 1.0, out_shape[1] / in_shape[1], out_shape[2] / in_shape[2]], dtype=np.float32
        )
        self.node(
            "Resize",
            [source, "", self.add_initializer(scales, "scales")],
            [output],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )

    def slice(self, source, axis, start, end):
        output = self.fresh("slice")
        self.node(
            "Slice",
            [
                source,
                self.add_initializer(np.array([start], np.int64), "starts"),
                self.add_initializer(np.array([end], np.int64), "ends"),
                self.add_initializer(np.array([axis], np.int64), "axes"),
            ],
            [output],
        )
        return output

    def upsample_2x(self, source, output, axis, length, shape_after):
        """Half-pixel bilinear 2x along one axis.

        Output 2k samples x = k - 0.25 -> 0.75*in[k] + 0.25*in[k-1]; output 2k+1 samples
        x = k + 0.25 -> 0.75*in[k] + 0.25*in[k+1]; out-of-range neighbours clamp to the edge,
        exactly as TFLite's and ONNX's half_pixel Resize do.
        """
        previous = self.fresh("previous")
        self.node(
            "Concat", [self.slice(source, axis, 0, 1), self.slice(source, axis, 0, length - 1)], [previous], axis=axis
        )
        following = self.fresh("following")
        self.node(
            "Concat",
            [self.slice(source, axis, 1, length), self.slice(source, axis, length - 1, length)],
            [following],
            axis=axis,
        )
        three_quarters = self.add_initializer(np.array(0.75, np.float32), "three_quarters")
        quarter = self.add_initializer(np.array(0.25, np.float32), "quarter")
        centre = self.fresh("centre")
        self.node("Mul", [source, three_quarters], [centre])
        interleaved = []
        for neighbour in (previous, following):
            weighted = self.fresh("weighted")
            self.node("Mul", [neighbour, quarter], [weighted])
            blended = self.fresh("blended")
            self.node("Add", [centre, weighted], [blended])
            expanded = self.fresh("expanded")
            self.node(
                "Unsqueeze",
                [blended, self.add_initializer(np.array([axis + 1], np.int64), "unsqueeze_axis")],
                [expanded],
            )
            interleaved.append(expanded)
        stacked = self.fresh("stacked")
        self.node("Concat", interleaved, [stacked], axis=axis + 1)
        self.node("Reshape", [stacked, self.add_initializer(np.array(shape_after, np.int64), "shape")], [output])

    def convert_global_pool(self, op, name):
        in_shape = self.tensor_shape(op.Inputs(0))
        out_shape = self.tensor_shape(op.Outputs(0))
        if out_shape[1:3] != [1, 1] or len(out_shape) != 4:
            raise ConversionError(f"{name}: only full-frame pooling with kept dims is supported, got {in_shape} -> {out_shape}")
        self.node("GlobalAveragePool", [self.tensor_name(op.Inputs(0))], [self.tensor_name(op.Outputs(0))])

    def convert_transpose_conv_bias(self, op):
        # MediaPipe's custom op: inputs (input, weights [O, kh, kw, I], bias); options are raw
        # little-endian int32 {padding, stride_w, stride_h} with the C enum (1 = SAME, 2 = VALID).
        raw = op.CustomOptionsAsNumpy().tobytes()
        padding, stride_w, stride_h = struct.unpack("<3i", raw[:12])
        weights = self.constant(op.Inputs(1)).transpose(3, 0, 1, 2)  # -> [I, O, kh, kw], no spatial flip
        bias = self.constant(op.Inputs(2))
        kernel_hw = list(weights.shape[2:])
        in_shape = self.tensor_shape(op.Inputs(0))
        out_shape = self.tensor_shape(op.Outputs(0))
        expected = [(in_shape[1] - 1) * stride_h + kernel_hw[0], (in_shape[2] - 1) * stride_w + kernel_hw[1]]
        if padding not in (1, 2) or expected != out_shape[1:3]:
            raise ConversionError(
                f"Convolution2DTransposeBias: unsupported geometry padding={padding} {in_shape} -> {out_shape}"
            )
        self.node(
            "ConvTranspose",
            [self.tensor_name(op.Inputs(0)), self.add_initializer(weights, "weight"), self.add_initializer(bias, "bias")],
            [self.tensor_name(op.Outputs(0))],
            kernel_shape=kernel_hw,
            strides=[stride_h, stride_w],
        )

    def convert_op(self, index):
        op = self.graph.Operators(index)
        code, builtin = self.builtin(op)
        B = tflite.BuiltinOperator
        if index in self.deferred_resizes.values():
            return  # emitted after its conv, by convert_conv_then_resize
        if index in self.deferred_resizes:
            self.convert_conv_then_resize(op, self.graph.Operators(self.deferred_resizes[index]))
            return
        if builtin == B.DEQUANTIZE:
            # Weights are stored as fp16 buffers: fold to f32 initialisers.
            array = self.buffer_array(op.Inputs(0))
            if array is None:
                raise ConversionError("DEQUANTIZE of a non-constant tensor")
            self.constants[op.Outputs(0)] = array.astype(np.float32)
        elif builtin == B.CONV_2D:
            self.convert_conv(op, depthwise=False)
        elif builtin == B.DEPTHWISE_CONV_2D:
            self.convert_conv(op, depthwise=True)
        elif builtin == B.ADD:
            self.convert_binary(op, "Add", tflite.AddOptions)
        elif builtin == B.MUL:
            self.convert_binary(op, "Mul", tflite.MulOptions)
        elif builtin in (B.RELU, B.LOGISTIC, B.HARD_SWISH):
            onnx_op = {B.RELU: "Relu", B.LOGISTIC: "Sigmoid", B.HARD_SWISH: "HardSwish"}[builtin]
            self.node(onnx_op, [self.tensor_name(op.Inputs(0))], [self.tensor_name(op.Outputs(0))])
        elif builtin == B.RESIZE_BILINEAR:
            self.convert_resize(op)
        elif builtin == B.MEAN:
            self.convert_global_pool(op, "MEAN")
        elif builtin == B.AVERAGE_POOL_2D:
            self.convert_global_pool(op, "AVERAGE_POOL_2D")
        elif builtin == B.CUSTOM and code.CustomCode() == b"Convolution2DTransposeBias":
            self.convert_transpose_conv_bias(op)
        else:
            name = code.CustomCode() if builtin == B.CUSTOM else BUILTIN_NAMES.get(builtin, builtin)
            raise ConversionError(f"unsupported operator {name}")

    def convert(self):
        if self.conv_before_resize:
            self.find_resizes_to_defer()
        for i in range(self.graph.OperatorsLength()):
            self.convert_op(i)
        if self.graph.InputsLength() != 1 or self.graph.OutputsLength() != 1:
            raise ConversionError("expected one input and one output")
        input_index = self.graph.Inputs(0)
        output_index = self.graph.Outputs(0)
        n, h, w, c = self.tensor_shape(input_index)
        # Rename the graph's ends to stable, meaningful names.
        renames = {self.tensor_name(input_index): "input", self.tensor_name(output_index): "segment_back"}
        for node in self.nodes:
            node.input[:] = [renames.get(x, x) for x in node.input]
            node.output[:] = [renames.get(x, x) for x in node.output]
        out_shape = self.tensor_shape(output_index)
        graph = helper.make_graph(
            self.nodes,
            "selfie_segmentation",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, c, h, w])],
            [helper.make_tensor_value_info("segment_back", TensorProto.FLOAT, [1, out_shape[3], out_shape[1], out_shape[2]])],
            self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="gst-vcc models/convert/tflite2onnx.py",
        )
        model.ir_version = 8
        model.doc_string = (
            "MediaPipe Selfie Segmentation (Apache-2.0), converted from TFLite. "
            "input: RGB float [1,3,H,W] in [0,1]; segment_back: person probability [1,1,H,W]."
        )
        onnx.checker.check_model(model)
        return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tflite")
    parser.add_argument("onnx")
    parser.add_argument("--fast-resize", action="store_true", help="rewrite 2x bilinear Resize for tract speed")
    parser.add_argument(
        "--conv-before-resize", action="store_true", help="move 1x1 convs in front of the upsample feeding them"
    )
    args = parser.parse_args()
    with open(args.tflite, "rb") as f:
        model_bytes = f.read()
    try:
        model = Converter(model_bytes, args.fast_resize, args.conv_before_resize).convert()
    except ConversionError as error:
        sys.exit(f"{args.tflite}: {error}")
    onnx.save(model, args.onnx)


if __name__ == "__main__":
    main()
