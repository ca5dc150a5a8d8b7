// seqclient: query a seqserve server from a terminal or a script.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cmd/classification_format.h"
#include "cmd/explanation_format.h"
#include "client/load_generator.h"
#include "client/seqserve_client.h"
#include "core/feature_input.h"
#include "core/feature_rows.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "cmd/flag_help.h"
#include "cmd/row_input.h"

ABSL_FLAG(std::string, target, "",
          "Server: host:port, several separated by commas, or a gRPC target "
          "such as dns:///seqserve-headless:8500; default: $SEQSERVE_TARGET, else "
          "localhost:8500");
ABSL_FLAG(int, deadline_ms, 10000, "Deadline of each call");
ABSL_FLAG(std::string, tls_ca_file, "",
          "TLS: PEM CAs that sign the server's certificate (any --tls_* flag turns TLS on; "
          "without this one the system's roots are trusted)");
ABSL_FLAG(std::string, tls_cert_file, "", "TLS: client certificate (PEM) for mutual TLS");
ABSL_FLAG(std::string, tls_key_file, "", "TLS: private key (PEM) of --tls_cert_file");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name to check in the server's certificate (default: the target's host)");
ABSL_FLAG(std::string, token, "",
          "Bearer token sent with every call; default: $SEQSERVE_TOKEN, which keeps it "
          "out of shell history and process lists");
ABSL_FLAG(std::string, model, "", "classify, explain, bench: model name");
ABSL_FLAG(int64_t, version, 0, "classify, explain, metadata: model version (0: latest)");
ABSL_FLAG(std::string, version_label, "",
          "classify, explain: the version by its label in the model's config (\"stable\"); not "
          "with --version");
ABSL_FLAG(std::string, request_id, "",
          "classify, explain: the request's id (x-request-id; the v2 request's id): a traffic "
          "split sends the same id to the same version");
ABSL_FLAG(std::string, output, "default",
          "classify: default, logits, sigmoid, softmax or log_softmax (or the API's "
          "names, OUTPUT_MODE_SOFTMAX, ...); explain: the form of the score explained");
ABSL_FLAG(uint32_t, top_k, 0, "classify: also list the k best classes per row");
ABSL_FLAG(float, threshold, 0, "classify, explain: sigmoid threshold (0: the model's)");
ABSL_FLAG(std::string, format, "table",
          "classify, explain, models: table, csv or json; metadata: table or json; bench: table or "
          "csv; health: table");
ABSL_FLAG(std::string, input, "",
          "classify, explain: file of feature rows ('-' or empty: stdin): CSV, CSV with a "
          "header row (columns matched to the model's feature_names), or JSON Lines; rows may "
          "also be given as arguments");
ABSL_FLAG(std::string, service, "", "health: service name (empty: the whole server)");
ABSL_FLAG(std::string, concurrency, "1,2,4,8,16,32,64",
          "bench: calls kept outstanding, one step per value");
ABSL_FLAG(double, duration_seconds, 5, "bench: measuring time per step");
ABSL_FLAG(int64_t, requests, 0, "bench: calls per step instead of a duration");
ABSL_FLAG(uint32_t, rows, 1, "bench: rows per Classify call");
ABSL_FLAG(std::string, rpc, "classify",
          "bench: classify, or health for the empty grpc.health.v1 Check");
ABSL_FLAG(bool, csv, false, "bench: print the results as CSV (as --format csv)");
ABSL_FLAG(bool, ready, false, "index: only the versions that can answer now");
ABSL_FLAG(std::string, config, "",
          "load: a config.textproto used instead of the model's own until the next load");
ABSL_FLAG(std::string, method, "integrated_gradients",
          "explain: saliency, input_x_gradient, integrated_gradients or shapley");
ABSL_FLAG(std::string, target_class, "",
          "explain: the class explained, by index or label (empty: each row's predicted "
          "class)");
ABSL_FLAG(std::string, baseline, "",
          "explain: the row attributions are measured from, comma-separated (empty: the "
          "model's explanation_baseline, else zeros)");
ABSL_FLAG(uint32_t, steps, 0, "explain: integrated gradients' points (0: 50)");
ABSL_FLAG(std::string, rule, "",
          "explain: gausslegendre (default), riemann_left, riemann_right, riemann_middle or "
          "riemann_trapezoid");
ABSL_FLAG(std::string, protocol, "v1",
          "classify, bench: v1 (seqserve.v1 Classify) or v2 (the Open Inference "
          "Protocol's ModelInfer on the same port)");

namespace seqserve {
namespace {

constexpr char kUsage[] =
    "Queries a seqserve server.\n"
    "  seqclient classify --model species 4,0,1 2,1,0   (or --input rows.csv)\n"
    "  seqclient explain --model species 4,0,1          (why: each feature's share)\n"
    "  seqclient models\n"
    "  seqclient metadata MODEL\n"
    "  seqclient index                                  (every model on disk, loaded or not)\n"
    "  seqclient load MODEL [--config config.textproto] (--model_control_mode=explicit)\n"
    "  seqclient unload MODEL\n"
    "  seqclient health                                 (exit 0 when SERVING)\n"
    "  seqclient bench --model species --concurrency 1,2,4 --duration_seconds 5\n"
    "  seqclient classify|bench --protocol v2 ...        (Open Inference Protocol)\n"
    "Common flags: --target host:port --deadline_ms N\n"
    "  TLS: --tls_ca_file ca.pem [--tls_cert_file c.pem --tls_key_file c.key]\n"
    "  [--tls_server_name NAME]; token: SEQSERVE_TOKEN=... or --token\n"
    "seqclient COMMAND --help lists one command's flags.";

// --target, else $SEQSERVE_TARGET, else the default port on this machine.
std::string Target() {
  if (std::string target = absl::GetFlag(FLAGS_target); !target.empty()) return target;
  if (const char* target = std::getenv("SEQSERVE_TARGET"); target != nullptr && *target) {
    return target;
  }
  return "localhost:8500";
}

int Fail(const std::string& message) {
  std::cerr << "seqclient: " << message << "\n";
  return 1;
}

// --format json: the API's message, as the REST API prints it.
int PrintJson(const google::protobuf::Message& message) {
  auto text = ApiJson(message);
  if (!text.ok()) return Fail(std::string(text.status().message()));
  std::cout << *text;
  return 0;
}

// What to do about a TLS handshake that failed, or a connection the server
// closed as soon as it was made (how a TLS server answers a plaintext
// client, and how a mutual-TLS server answers a client without a
// certificate it accepts), given the TLS flags this call had.
std::string TlsHint(absl::string_view message) {
  const bool tls = !absl::GetFlag(FLAGS_tls_ca_file).empty() ||
                   !absl::GetFlag(FLAGS_tls_cert_file).empty() ||
                   !absl::GetFlag(FLAGS_tls_key_file).empty() ||
                   !absl::GetFlag(FLAGS_tls_server_name).empty();
  const bool client_cert = !absl::GetFlag(FLAGS_tls_cert_file).empty();
  if (absl::StrContains(message, "wrong version number")) {
    return "the server does not speak TLS: leave out the --tls_* flags";
  }
  if (absl::StrContains(message, "certificate verify failed")) {
    return "the server's certificate is not signed by a CA of --tls_ca_file (or, without "
           "it, of the system's roots); give --tls_ca_file the CA that signed it";
  }
  if (!tls) {
    return "a TLS server answers a plaintext call so: give --tls_ca_file "
           "(the CA of the server's certificate), and --tls_cert_file with --tls_key_file "
           "if it requires client certificates";
  }
  if (!client_cert) {
    return "a mutual-TLS server answers a call without a client certificate so: give "
           "--tls_cert_file and --tls_key_file";
  }
  return "the server may not accept the certificate of --tls_cert_file (not signed "
         "by a CA it trusts), or --tls_ca_file does not hold the CA of its own certificate";
}

// Says what a failed call means for the person at the terminal.
int FailCall(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kUnavailable) return Fail(status.ToString());
  const absl::string_view message = status.message();
  if (absl::StrContains(message, "handshake")) {
    return Fail(absl::StrCat("TLS handshake with ", Target(), " failed: ", TlsHint(message),
                             " (", status.ToString(), ")"));
  }
  if (absl::StrContains(message, "Socket closed")) {
    return Fail(absl::StrCat(Target(), " closed the connection right after it was made, "
                             "likely a failed TLS handshake: ", TlsHint(message), " (",
                             status.ToString(), ")"));
  }
  if (absl::StrContains(message, "connect") ||
      absl::StrContains(message, "Connection refused")) {
    return Fail(absl::StrCat("cannot reach ", Target(),
                             " (is seqserve running there?): ", status.ToString()));
  }
  return Fail(status.ToString());
}

// " (stable, canary)": the version labels naming a version; "" for none.
std::string VersionLabelsText(const std::vector<std::string>& labels) {
  return labels.empty() ? "" : absl::StrCat(" (", absl::StrJoin(labels, ", "), ")");
}

std::string StateName(v1::ModelState state) {
  std::string name = v1::ModelState_Name(state);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "MODEL_STATE_"));
}

// --format for the commands that print rows; `allowed` lists what the
// command can print.
absl::StatusOr<OutputFormat> FormatFlag(absl::string_view command,
                                        const std::vector<OutputFormat>& allowed) {
  auto format = ParseOutputFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return format.status();
  if (std::find(allowed.begin(), allowed.end(), *format) == allowed.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        command, " does not print --format ", absl::GetFlag(FLAGS_format)));
  }
  return *format;
}

// The same rows as one ModelInfer call, printed as the protocol's tensors.
// `model_metadata` is the model's seqserve.v1 metadata when a top-k (its
// default output) or a CSV (its labels) needs it, else empty.
int ClassifyV2(Client& client, const std::string& model, const FeatureRows& rows,
               const ClassifyOptions& options, const std::string& format,
               const ModelMetadata& model_metadata) {
  // The protocol has no threshold: the flag would be dropped, so refuse it.
  if (options.threshold != 0.0f) {
    return Fail(
        "--threshold cannot be sent over --protocol v2 (the Open Inference Protocol has no "
        "threshold; the model's own applies): leave it out or use --protocol v1");
  }
  auto metadata = client.ModelMetadataV2(model, options.version);
  if (!metadata.ok()) return FailCall(metadata.status());
  v1::ClassifyRequest request;
  request.set_model(model);
  request.set_version(options.version);
  request.mutable_features()->Add(rows.values.begin(), rows.values.end());
  for (const std::string& category : rows.categories) request.add_categories(category);
  request.set_rows(static_cast<uint32_t>(rows.rows));
  request.set_output(options.output);
  request.set_top_k(options.top_k);
  // A top-k of the default output asks that output by its name.
  inference::ModelInferRequest infer =
      ToModelInferRequest(request, *metadata, /*raw=*/false, model_metadata.default_output);
  if (!options.version_label.empty()) {
    (*infer.mutable_parameters())["version_label"].set_string_param(options.version_label);
  }
  infer.set_id(options.request_id);
  auto answer = client.Infer(infer);
  if (!answer.ok()) return FailCall(answer.status());
  if (format == "json") {
    google::protobuf::util::JsonPrintOptions json;
    json.preserve_proto_field_names = true;
    std::string text;
    if (!google::protobuf::util::MessageToJsonString(*answer, &text, json).ok()) {
      return Fail("cannot print the answer as JSON");
    }
    std::cout << text << "\n";
    return 0;
  }
  // One line per row and output: its elements (floats in full precision),
  // comma- or space-separated. The one output asked has one width, so a
  // CSV has one header over rows of its columns: the scores named as v1's
  // CSV names them, the classification strings top_1, top_2, ...
  const bool csv = format == "csv";
  const std::string separator = csv ? "," : " ";
  for (const auto& tensor : answer->outputs()) {
    const int64_t width = tensor.shape_size() == 2 ? tensor.shape(1) : 0;
    const bool strings = tensor.datatype() == "BYTES";
    if (csv) {
      std::vector<std::string> header = {"row", "output"};
      if (strings) {
        for (int64_t i = 0; i < width; ++i) header.push_back(absl::StrCat("top_", i + 1));
      } else {
        for (const std::string& name :
             ScoreColumnNames(model_metadata.labels, static_cast<size_t>(width))) {
          header.push_back(CsvField(name));
        }
      }
      std::cout << absl::StrJoin(header, ",") << "\n";
    }
    const auto& contents = tensor.contents();
    for (int64_t row = 0; row < static_cast<int64_t>(rows.rows); ++row) {
      std::vector<std::string> values;
      for (int64_t i = row * width; i < (row + 1) * width; ++i) {
        std::string value = strings ? contents.bytes_contents(static_cast<int>(i))
                                    : FormatFloat(contents.fp32_contents(static_cast<int>(i)));
        values.push_back(csv ? CsvField(value) : std::move(value));
      }
      std::cout << row << separator << (csv ? CsvField(tensor.name()) : tensor.name())
                << separator << absl::StrJoin(values, separator) << "\n";
    }
  }
  return 0;
}

int Classify(Client& client, const std::vector<std::string>& args) {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return Fail("classify needs --model");
  ClassifyOptions options;
  auto output = ParseOutputModeShortName(absl::GetFlag(FLAGS_output));
  if (!output.ok()) return Fail(std::string(output.status().message()));
  options.output = *output;
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.threshold = absl::GetFlag(FLAGS_threshold);
  options.version = absl::GetFlag(FLAGS_version);
  options.version_label = absl::GetFlag(FLAGS_version_label);
  options.request_id = absl::GetFlag(FLAGS_request_id);
  if (options.version != 0 && !options.version_label.empty()) {
    return Fail("give --version or --version_label, not both");
  }
  auto format = FormatFlag("classify", {OutputFormat::kTable, OutputFormat::kCsv,
                                        OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  const std::string protocol = absl::GetFlag(FLAGS_protocol);
  if (protocol != "v1" && protocol != "v2") {
    return Fail(absl::StrCat("unknown --protocol '", protocol, "'"));
  }

  // The model's metadata is a call of its own, made only when what is read
  // or printed needs it: the feature names a header row is matched to, the
  // labels that name score columns, the default output a v2 top-k names.
  ModelMetadata metadata;
  bool have_metadata = false;
  auto fetch_metadata = [&](int64_t version) {
    auto answer = client.GetModelMetadata(model, version);
    if (!answer.ok()) return answer.status();
    metadata = std::move(*answer);
    have_metadata = true;
    return absl::OkStatus();
  };
  auto text = ReadRowText(args, absl::GetFlag(FLAGS_input));
  if (!text.ok()) return Fail(std::string(text.status().message()));
  FeatureInputOptions input;
  input.line_word = text->line_word;
  if (InputNamesFeatures(text->text)) {
    if (absl::Status fetched = fetch_metadata(options.version); !fetched.ok()) {
      return FailCall(fetched);
    }
    input.feature_names = metadata.feature_names;
    input.width = metadata.input_width;
  }
  auto rows = ParseFeatureInput(text->text, input);
  if (!rows.ok()) return Fail(std::string(rows.status().message()));

  if (protocol == "v2") {
    if (!have_metadata && (options.top_k > 0 || *format == OutputFormat::kCsv)) {
      if (absl::Status fetched = fetch_metadata(options.version); !fetched.ok()) {
        return FailCall(fetched);
      }
    }
    return ClassifyV2(client, model, *rows, options, absl::GetFlag(FLAGS_format), metadata);
  }
  options.categories = rows->categories;
  auto result = client.Classify(model, rows->values, rows->rows, options);
  if (!result.ok()) return FailCall(result.status());
  // A table or CSV names score columns by the labels, which a model
  // without labels (no predicted label) does not have; JSON needs none.
  const bool labelled = std::any_of(result->rows.begin(), result->rows.end(),
                                    [](const RowPrediction& row) {
                                      return !row.predicted_label.empty();
                                    });
  if (!have_metadata && labelled && *format != OutputFormat::kJson) {
    // The version that answered, so its labels name its scores.
    if (absl::Status fetched = fetch_metadata(result->version); !fetched.ok()) {
      return FailCall(fetched);
    }
  }
  auto printed = FormatClassification(*result, metadata.labels, *format);
  if (!printed.ok()) return Fail(std::string(printed.status().message()));
  std::cout << *printed;
  return 0;
}

int Explain(Client& client, const std::vector<std::string>& args) {
  v1::ExplainRequest request;
  request.set_model(absl::GetFlag(FLAGS_model));
  if (request.model().empty()) return Fail("explain needs --model");
  request.set_version(absl::GetFlag(FLAGS_version));
  request.set_version_label(absl::GetFlag(FLAGS_version_label));
  if (request.version() != 0 && !request.version_label().empty()) {
    return Fail("give --version or --version_label, not both");
  }
  auto output = ParseOutputModeShortName(absl::GetFlag(FLAGS_output));
  if (!output.ok()) return Fail(std::string(output.status().message()));
  request.set_output(*output);
  request.set_threshold(absl::GetFlag(FLAGS_threshold));
  ExplainFlags flags;
  flags.method = absl::GetFlag(FLAGS_method);
  flags.rule = absl::GetFlag(FLAGS_rule);
  flags.target_class = absl::GetFlag(FLAGS_target_class);
  flags.baseline = absl::GetFlag(FLAGS_baseline);
  flags.steps = absl::GetFlag(FLAGS_steps);
  if (absl::Status filled = FillExplainRequest(flags, &request); !filled.ok()) {
    return Fail(std::string(filled.message()));
  }
  auto format = FormatFlag("explain", {OutputFormat::kTable, OutputFormat::kCsv,
                                       OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  auto text = ReadRowText(args, absl::GetFlag(FLAGS_input));
  if (!text.ok()) return Fail(std::string(text.status().message()));
  FeatureInputOptions input;
  input.line_word = text->line_word;
  if (InputNamesFeatures(text->text)) {
    auto metadata = client.GetModelMetadata(request.model(), request.version());
    if (!metadata.ok()) return FailCall(metadata.status());
    input.feature_names = metadata->feature_names;
    input.width = metadata->input_width;
  }
  auto rows = ParseFeatureInput(text->text, input);
  if (!rows.ok()) return Fail(std::string(rows.status().message()));
  request.mutable_features()->Add(rows->values.begin(), rows->values.end());
  request.set_rows(static_cast<uint32_t>(rows->rows));
  auto response = client.Explain(request, absl::GetFlag(FLAGS_request_id));
  if (!response.ok()) return FailCall(response.status());
  auto printed = FormatExplanation(*response, *format);
  if (!printed.ok()) return Fail(std::string(printed.status().message()));
  std::cout << *printed;
  return 0;
}

int Models(Client& client) {
  auto format = FormatFlag("models", {OutputFormat::kTable, OutputFormat::kCsv,
                                      OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  if (*format == OutputFormat::kJson) {
    auto message = client.ListModelsMessage();
    if (!message.ok()) return FailCall(message.status());
    return PrintJson(*message);
  }
  auto models = client.ListModels();
  if (!models.ok()) return FailCall(models.status());
  const bool csv = *format == OutputFormat::kCsv;
  auto print = [csv](const std::string& name, const std::string& version,
                     const std::string& state, const std::string& error) {
    if (csv) {
      std::cout << CsvField(name) << "," << version << "," << state << "," << CsvField(error)
                << "\n";
    } else {
      // No padding after the last column.
      std::cout << absl::StripTrailingAsciiWhitespace(
                       absl::StrFormat("%-24s %-8s %-10s %s", name, version, state, error))
                << "\n";
    }
  };
  print("model", "version", "state", "error");
  for (const ModelInfo& model : *models) {
    if (model.versions.empty()) print(model.name, csv ? "" : "-", csv ? "" : "-", model.error);
    for (const ModelVersion& version : model.versions) {
      print(model.name, absl::StrCat(version.version), StateName(version.state),
            version.error.empty() ? model.error : version.error);
    }
  }
  return 0;
}

int Index(Client& client) {
  auto format = FormatFlag("index", {OutputFormat::kTable, OutputFormat::kCsv,
                                     OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  auto index = client.RepositoryIndex(absl::GetFlag(FLAGS_ready));
  if (!index.ok()) return FailCall(index.status());
  if (*format == OutputFormat::kJson) return PrintJson(*index);
  const bool csv = *format == OutputFormat::kCsv;
  auto print = [csv](const std::string& model, const std::string& version,
                     const std::string& state, const std::string& reason) {
    if (csv) {
      std::cout << CsvField(model) << "," << version << "," << state << "," << CsvField(reason)
                << "\n";
    } else {
      std::cout << absl::StripTrailingAsciiWhitespace(
                       absl::StrFormat("%-24s %-8s %-10s %s", model, version, state, reason))
                << "\n";
    }
  };
  print("model", "version", "state", "reason");
  for (const auto& entry : index->entries()) {
    // A model with no version loaded has version 0: shown as "-".
    print(entry.model(), entry.version() == 0 ? (csv ? "" : "-") : absl::StrCat(entry.version()),
          StateName(entry.state()), entry.reason());
  }
  return 0;
}

int Load(Client& client, const std::vector<std::string>& args) {
  auto format = FormatFlag("load", {OutputFormat::kTable, OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  if (args.size() != 1) return Fail("load takes one MODEL");
  std::optional<v1::ModelConfig> config;
  if (const std::string file = absl::GetFlag(FLAGS_config); !file.empty()) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return Fail(absl::StrCat("cannot read --config ", file));
    config.emplace();
    if (!google::protobuf::TextFormat::ParseFromString(text.str(), &*config)) {
      return Fail(absl::StrCat("--config ", file, " is not a seqserve.v1.ModelConfig in text "
                               "format (config.textproto's)"));
    }
  }
  auto status = client.LoadModel(args[0], config);
  if (!status.ok()) return FailCall(status.status());
  if (*format == OutputFormat::kJson) return PrintJson(*status);
  std::cout << "loaded " << status->name() << "\n";
  for (const v1::VersionStatus& version : status->versions()) {
    std::cout << "  " << version.version() << " " << StateName(version.state())
              << VersionLabelsText({version.labels().begin(), version.labels().end()})
              << (version.error().empty() ? "" : " " + version.error()) << "\n";
  }
  return 0;
}

int Unload(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Fail("unload takes one MODEL");
  if (absl::Status status = client.UnloadModel(args[0]); !status.ok()) return FailCall(status);
  std::cout << "unloaded " << args[0] << "\n";
  return 0;
}

int Metadata(Client& client, const std::vector<std::string>& args) {
  auto format = FormatFlag("metadata", {OutputFormat::kTable, OutputFormat::kJson});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  if (args.size() != 1) return Fail("metadata takes one MODEL");
  if (*format == OutputFormat::kJson) {
    auto message = client.GetModelMetadataMessage(args[0], absl::GetFlag(FLAGS_version));
    if (!message.ok()) return FailCall(message.status());
    return PrintJson(*message);
  }
  auto m = client.GetModelMetadata(args[0], absl::GetFlag(FLAGS_version));
  if (!m.ok()) return FailCall(m.status());
  std::cout << "model:          " << m->model << "\n"
            << "version:        " << m->version << "\n"
            << "description:    " << m->description << "\n"
            << "input width:    " << m->input_width << "\n"
            << "output width:   " << m->output_width << "\n"
            << "labels:         " << absl::StrJoin(m->labels, ", ") << "\n"
            << "feature names:  " << absl::StrJoin(m->feature_names, ", ") << "\n"
            << "default output: " << OutputModeShortName(m->default_output) << "\n"
            << "threshold:      " << m->threshold << "\n"
            << "parameters:     " << m->parameter_count << "\n"
            << "layers:         " << absl::StrJoin(m->layers, " -> ") << "\n"
            << "limits:         " << m->limits.max_request_rows << " rows, "
            << m->limits.max_request_memory_bytes << " bytes of activations per request (0: "
            << "none)\n"
            << "batching:       " << m->limits.max_batch_rows << " rows per pass, "
            << m->limits.max_queue_delay_micros << " us queue delay, "
            << m->limits.max_queued_rows << " rows queued at most\n"
            << "versions:\n";
  for (const ModelVersion& version : m->versions) {
    std::cout << "  " << version.version << " " << StateName(version.state)
              << VersionLabelsText(version.labels)
              << (version.error.empty() ? "" : " " + version.error) << "\n";
  }
  return 0;
}

int Health(Client& client) {
  // One word: nothing to put in columns.
  auto format = FormatFlag("health", {OutputFormat::kTable});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  auto status = client.Health(absl::GetFlag(FLAGS_service));
  if (!status.ok()) return FailCall(status.status());
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status) << "\n";
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int Bench(Client& client) {
  auto format = FormatFlag("bench", {OutputFormat::kTable, OutputFormat::kCsv});
  if (!format.ok()) return Fail(std::string(format.status().message()));
  LoadOptions options;
  const std::string rpc = absl::GetFlag(FLAGS_rpc);
  if (rpc == "classify") {
    const std::string model = absl::GetFlag(FLAGS_model);
    if (model.empty()) return Fail("bench --rpc classify needs --model");
    auto metadata = client.GetModelMetadata(model, 0);
    if (!metadata.ok()) return FailCall(metadata.status());
    const uint32_t rows = std::max<uint32_t>(1, absl::GetFlag(FLAGS_rows));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(0.0f, 4.0f);
    options.request.set_model(model);
    options.request.set_rows(rows);
    for (size_t i = 0; i < rows * metadata->input_width; ++i) {
      options.request.add_features(uniform(rng));
    }
    const std::string protocol = absl::GetFlag(FLAGS_protocol);
    if (protocol == "v2") {
      // Raw tensors, as high-rate v2 clients send them.
      auto tensors = client.ModelMetadataV2(model, 0);
      if (!tensors.ok()) return FailCall(tensors.status());
      options.infer = ToModelInferRequest(options.request, *tensors, /*raw=*/true);
    } else if (protocol != "v1") {
      return Fail(absl::StrCat("unknown --protocol '", protocol, "'"));
    }
  } else if (rpc != "health") {
    return Fail(absl::StrCat("unknown --rpc '", rpc, "'"));
  }
  // The rpc column names the protocol's call.
  const std::string call_name =
      options.infer.model_name().empty() ? rpc : std::string("v2_infer");
  options.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_seconds));
  options.max_requests = absl::GetFlag(FLAGS_requests);
  const bool csv = absl::GetFlag(FLAGS_csv) || *format == OutputFormat::kCsv;
  std::vector<LoadStep> steps;
  for (absl::string_view level : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    if (!absl::SimpleAtoi(level, &options.concurrency) || options.concurrency <= 0) {
      return Fail(absl::StrCat("bad --concurrency value '", level, "'"));
    }
    options.progress = [&](int64_t done, double seconds) {
      std::cerr << absl::StrFormat("\r[concurrency %d] %lld calls, %.0f calls/s   ",
                                   options.concurrency, static_cast<long long>(done),
                                   seconds > 0 ? done / seconds : 0.0)
                << std::flush;
    };
    steps.push_back(RunLoad(client, options));
    const LoadStep& step = steps.back();
    std::cerr << absl::StrFormat(
        "\r[concurrency %d] %.0f calls/s, %.0f rows/s, p50 %.0f us, p99 %.0f us, "
        "%lld errors\n",
        step.concurrency, step.requests_per_second, step.rows_per_second, step.p50_us,
        step.p99_us, static_cast<long long>(step.errors));
    if (step.errors > 0) std::cerr << "  first error: " << step.first_error << "\n";
  }
  if (csv) {
    std::cout << "rpc,concurrency,requests,errors,seconds,requests_per_s,rows_per_s,"
                 "p50_us,p90_us,p95_us,p99_us\n";
  } else {
    std::cout << absl::StrFormat("%-8s %-11s %-9s %-7s %-12s %-12s %-9s %-9s %-9s %-9s\n",
                                 "rpc", "concurrency", "requests", "errors", "calls/s",
                                 "rows/s", "p50_us", "p90_us", "p95_us", "p99_us");
  }
  int64_t errors = 0;
  for (const LoadStep& s : steps) {
    errors += s.errors;
    if (csv) {
      std::cout << absl::StrFormat("%s,%d,%lld,%lld,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n",
                                   call_name, s.concurrency, static_cast<long long>(s.requests),
                                   static_cast<long long>(s.errors), s.seconds,
                                   s.requests_per_second, s.rows_per_second, s.p50_us,
                                   s.p90_us, s.p95_us, s.p99_us);
    } else {
      std::cout << absl::StrFormat(
          "%-8s %-11d %-9lld %-7lld %-12.0f %-12.0f %-9.0f %-9.0f %-9.0f %-9.0f\n",
          call_name,
          s.concurrency, static_cast<long long>(s.requests),
          static_cast<long long>(s.errors), s.requests_per_second, s.rows_per_second,
          s.p50_us, s.p90_us, s.p95_us, s.p99_us);
    }
  }
  return errors == 0 ? 0 : 1;
}

const FlagGroup kConnection = {
    "connection (every command)",
    {"target", "deadline_ms", "tls_ca_file", "tls_cert_file", "tls_key_file",
     "tls_server_name", "token"}};

// --help's flags by command; `seqclient COMMAND --help` shows one command's.
std::vector<FlagGroup> CommandGroups() {
  return {
      {"classify", {"model", "version", "version_label", "request_id", "output", "top_k",
                    "threshold", "format", "input", "protocol"}},
      {"explain", {"model", "version", "version_label", "request_id", "method", "target_class",
                   "output", "baseline", "steps", "rule", "threshold", "format", "input"}},
      {"models", {"format"}},
      {"metadata", {"version", "format"}},
      {"index", {"ready", "format"}},
      {"load", {"config", "format"}},
      {"health", {"service"}},
      {"bench", {"model", "rows", "rpc", "concurrency", "duration_seconds", "requests",
                 "format", "csv", "protocol"}},
  };
}

// The command --help was asked about: the first word that is not a flag.
std::string HelpCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return argv[i];
  }
  return "";
}

std::string Help(const std::string& command) {
  std::vector<FlagGroup> groups;
  for (const FlagGroup& group : CommandGroups()) {
    if (command.empty() || group.title == command) groups.push_back(group);
  }
  if (groups.empty()) groups = CommandGroups();
  groups.push_back(kConnection);
  return GroupedFlagHelp(kUsage, groups, groups.size() > 2 ? "cmd/seqclient.cc" : "");
}

int Main(int argc, char** argv) {
  if (HelpRequested(argc, argv)) {
    std::cout << Help(HelpCommand(argc, argv));
    return 0;
  }
  // As in seqserve: Debian's Abseil checks every Mutex for deadlocks, which
  // `bench` (a load generator beside the server) should not pay for.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> joined = JoinDashValue(argc, argv, "input");
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(joined.size()), joined.data());
  if (positional.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = positional[1];
  const std::vector<std::string> args(positional.begin() + 2, positional.end());
  ClientOptions options;
  options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  options.bearer_token = absl::GetFlag(FLAGS_token);
  if (const char* token = std::getenv("SEQSERVE_TOKEN");
      options.bearer_token.empty() && token != nullptr) {
    options.bearer_token = token;
  }
  auto client = Client::Create(Target(), options);
  if (!client.ok()) return Fail(std::string(client.status().message()));
  if (command == "classify") return Classify(**client, args);
  if (command == "explain") return Explain(**client, args);
  if (command == "models") return Models(**client);
  if (command == "metadata") return Metadata(**client, args);
  if (command == "index") return Index(**client);
  if (command == "load") return Load(**client, args);
  if (command == "unload") return Unload(**client, args);
  if (command == "health") return Health(**client);
  if (command == "bench") return Bench(**client);
  std::cerr << "seqclient: unknown command '" << command << "'\n" << kUsage << "\n";
  return 2;
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) { return seqserve::Main(argc, argv); }
