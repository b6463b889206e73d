// The original model on fixed faces: node predict.cjs MODEL_DIR INPUT.json OUTPUT.json
// INPUT: {"faces": [{"shape": [h, w, 3], "data": [uint8 RGB, row-major]}]}
// OUTPUT: {"labels": [...], "probs": [[7 floats] per face], "backend": "cpu", "tfjs": "...", "faceapi": "..."}
// face-api.js does its own padding, resizing and normalisation (NetInput.toBatchTensor, FaceFeatureExtractor),
// on TensorFlow.js's CPU backend: pure JavaScript, no native binary.
const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

async function main() {
  const [modelDir, inputPath, outputPath] = process.argv.slice(2);
  const tf = faceapi.tf;
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_expression_model-weights_manifest.json')));
  const bin = fs.readFileSync(path.join(modelDir, 'face_expression_model.bin'));
  const weights = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length), manifest[0].weights);
  faceapi.nets.faceExpressionNet.loadFromWeightMap(weights);
  const input = JSON.parse(fs.readFileSync(inputPath));
  const probs = [];
  for (const face of input.faces) {
    const tensor = tf.tensor3d(Int32Array.from(face.data), face.shape, 'int32');
    const out = await faceapi.nets.faceExpressionNet.predictExpressions(tensor);
    probs.push(faceapi.FACE_EXPRESSION_LABELS.map((label) => out[label]));
    tensor.dispose();
  }
  fs.writeFileSync(outputPath, JSON.stringify({
    labels: faceapi.FACE_EXPRESSION_LABELS, probs, backend: tf.getBackend(), tfjs: tf.version_core,
    faceapi: faceapi.version,
  }));
}

main().catch((err) => { console.error(err); process.exit(1); });
