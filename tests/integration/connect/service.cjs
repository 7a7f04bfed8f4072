// The test service, described at run time (no protoc, no generated code):
//   service mulligan.test.Echo {
//     rpc Say(google.protobuf.StringValue) returns (google.protobuf.StringValue);
//     rpc Count(google.protobuf.StringValue) returns (stream google.protobuf.StringValue);
//   }
// Shared by peer.cjs (the server) and client.cjs.
"use strict";
const { create, createFileRegistry } = require("@bufbuild/protobuf");
const { FileDescriptorProtoSchema, file_google_protobuf_wrappers } = require("@bufbuild/protobuf/wkt");

const sv = ".google.protobuf.StringValue";
const file = create(FileDescriptorProtoSchema, {
  name: "mulligan_test.proto",
  package: "mulligan.test",
  dependency: ["google/protobuf/wrappers.proto"],
  syntax: "proto3",
  service: [{
    name: "Echo",
    method: [
      { name: "Say", inputType: sv, outputType: sv },
      { name: "Count", inputType: sv, outputType: sv, serverStreaming: true },
    ],
  }],
});
const registry = createFileRegistry(file, (name) =>
  name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined);

module.exports = { Echo: registry.getService("mulligan.test.Echo") };
