// How strongly experts specialise by a label of the data (e.g. the Brown genre of the document a
// token comes from). For each MoE layer we count token slots c[g][e]: how many times a token of
// label g was routed to expert e. From the joint distribution P(g, e) = c[g][e] / sum c:
//   mutual information  I(G; E) = sum_{g,e} P(g,e) log2( P(g,e) / (P(g) P(e)) )   (bits)
//   normalised          NMI     = I(G; E) / H(G),   H(G) = -sum_g P(g) log2 P(g)
// I = 0 when the expert choice is independent of the label; NMI = 1 when the expert determines the
// label. Terms with P(g,e) = 0 contribute 0. (Cover & Thomas, Elements of Information Theory, 2.3.)
// Also the genre-free load picture: load max/mean over experts and the mean number of experts
// a token uses, per layer.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sy {

struct LabelRouting {
  std::vector<std::string> labels;                    // label index -> name
  std::vector<std::vector<std::vector<double>>> c;    // [layer][label][expert] token slots
  std::vector<int64_t> tokens;                        // [layer] tokens seen

  LabelRouting(int n_layers, int n_experts, std::vector<std::string> label_names);
  // Adds one batch: tokens_per_expert [E] slots of n_tokens tokens, all of label `label`.
  void add(int layer, int label, std::span<const int64_t> tokens_per_expert, int64_t n_tokens);
  int n_layers() const { return int(c.size()); }
};

struct LayerSpecialisation {
  double mi_bits = 0, nmi = 0, label_entropy_bits = 0;
  double load_max_over_mean = 0;     // over experts, all labels together
  double experts_per_token = 0;      // slots / tokens
  std::vector<double> load_fraction; // [E] share of the layer's slots
};

// c [G][E] (any non-negative counts). Throws sy::Error on ragged or negative input.
double mutual_information_bits(const std::vector<std::vector<double>>& c);
double label_entropy_bits(const std::vector<std::vector<double>>& c);
LayerSpecialisation specialisation(const LabelRouting& r, int layer);

}  // namespace sy
